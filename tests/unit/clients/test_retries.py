"""Retries, backoff and timeouts, against the in-process stand-in (`standin.py`)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from clients.sdk import (
    APIConnectionError,
    APITimeoutError,
    AsyncWhetstone,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    Whetstone,
)

from .standin import Reply, Seen, StandIn

MODEL = {"id": "whetstone-tiny", "object": "model", "created": 1, "owned_by": "whetstone"}
LIMITED = Reply(429, {"error": {"message": "slow down", "type": "rate_limit", "param": None,
                                "code": "rate_limited"}}, headers={"Retry-After": "0"})  # fmt: skip


def test_429_twice_then_200_is_retried_and_succeeds(standin: StandIn) -> None:
    standin.script("GET", "/models/whetstone-tiny", LIMITED, LIMITED, Reply(200, MODEL))
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), max_retries=2
    ) as client:
        model = client.models.retrieve("whetstone-tiny")
    assert model.id == "whetstone-tiny"
    assert len(standin.requests) == 3


def test_retry_after_is_honoured(standin: StandIn, slept: list[float]) -> None:
    wait = Reply(429, {"error": {"message": "later"}}, headers={"Retry-After": "1"})
    standin.script("GET", "/models/whetstone-tiny", wait, Reply(200, MODEL))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        client.models.retrieve("whetstone-tiny")
    assert slept == [1.0]
    assert len(standin.requests) == 2


def test_out_of_retries_raises_the_last_error(standin: StandIn) -> None:
    standin.script("GET", "/models/whetstone-tiny", LIMITED)
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), max_retries=1
    ) as client:
        with pytest.raises(RateLimitError) as info:
            client.models.retrieve("whetstone-tiny")
    assert info.value.code == "rate_limited"
    assert len(standin.requests) == 2


def test_400_is_not_retried(standin: StandIn) -> None:
    bad = Reply(400, {"error": {"message": "n_epochs must be between 1 and 50",
                                "type": "invalid_request_error",
                                "param": "method.supervised.hyperparameters.n_epochs",
                                "code": "invalid_value"}})  # fmt: skip
    standin.script("POST", "/fine_tuning/jobs", bad)
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), max_retries=5
    ) as client:
        with pytest.raises(BadRequestError) as info:
            client.fine_tuning.jobs.create(model="m", training_file="file-1")
    assert len(standin.requests) == 1
    assert info.value.param == "method.supervised.hyperparameters.n_epochs"
    assert info.value.status_code == 400


def test_5xx_is_retried_with_backoff(standin: StandIn, slept: list[float]) -> None:
    down = Reply(503, {"error": {"message": "starting"}})
    standin.script("GET", "/models/whetstone-tiny", down, down, Reply(200, MODEL))
    with Whetstone(
        base_url=standin.url, api_key="k", max_retries=2, http_client=standin.http()
    ) as client:
        client.models.retrieve("whetstone-tiny")
    # 0.5 s then 1 s, each less up to 25 % of jitter
    first, second = slept
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0
    assert len(standin.requests) == 3


def test_500_after_retries_is_internal_server_error(standin: StandIn) -> None:
    standin.script(
        "GET", "/models", Reply(500, {"error": {"message": "boom"}}, {"Retry-After": "0"})
    )
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), max_retries=1
    ) as client:
        with pytest.raises(InternalServerError, match="boom"):
            client.models.list()
    assert len(standin.requests) == 2


def refused(_: Seen) -> Reply:
    raise httpx.ConnectError("[Errno 111] Connection refused")


def test_nothing_listening_is_a_connection_error(standin: StandIn) -> None:
    standin.route("GET", "/models", refused)
    with Whetstone(
        base_url=standin.url, api_key="k", max_retries=0, http_client=standin.http()
    ) as client:
        with pytest.raises(APIConnectionError, match="Connection refused"):
            client.models.list()


def test_connection_errors_are_retried_with_backoff_then_raised(
    standin: StandIn, slept: list[float]
) -> None:
    standin.route("GET", "/models", refused)

    async def go() -> None:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", max_retries=2, http_client=standin.async_http()
        ) as client:
            await client.models.list()

    with pytest.raises(APIConnectionError):
        asyncio.run(go())
    assert len(standin.requests) == 3
    first, second = slept
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0


def test_slow_answer_times_out(standin: StandIn) -> None:
    standin.script("GET", "/models", Reply(200, {"object": "list", "data": []}, delay=2.0))
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), timeout=0.3, max_retries=0
    ) as client:
        with pytest.raises(APITimeoutError):
            client.models.list()


def test_async_client_retries_429_then_succeeds(standin: StandIn, slept: list[float]) -> None:
    standin.script("GET", "/models/whetstone-tiny", LIMITED, LIMITED, Reply(200, MODEL))

    async def go() -> str:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            return (await client.models.retrieve("whetstone-tiny")).id

    assert asyncio.run(go()) == "whetstone-tiny"
    assert len(standin.requests) == 3
    assert slept == [0.0, 0.0]  # as its Retry-After said


def test_async_client_does_not_retry_400(standin: StandIn) -> None:
    standin.script("DELETE", "/files/file-1", Reply(400, {"error": {"message": "in use"}}))

    async def go() -> None:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            await client.files.delete("file-1")

    with pytest.raises(BadRequestError, match="in use"):
        asyncio.run(go())
    assert len(standin.requests) == 1
