"""Retries, backoff and timeouts, against a stand-in HTTP server on a loopback port."""

from __future__ import annotations

import asyncio
import time

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
from tests.conftest import free_port

from .standin import Reply, StandIn

MODEL = {"id": "whetstone-tiny", "object": "model", "created": 1, "owned_by": "whetstone"}
LIMITED = Reply(429, {"error": {"message": "slow down", "type": "rate_limit", "param": None,
                                "code": "rate_limited"}}, headers={"Retry-After": "0"})  # fmt: skip


def test_429_twice_then_200_is_retried_and_succeeds(standin: StandIn) -> None:
    standin.script("GET", "/models/whetstone-tiny", LIMITED, LIMITED, Reply(200, MODEL))
    with Whetstone(base_url=standin.url, api_key="k", max_retries=2) as client:
        model = client.models.retrieve("whetstone-tiny")
    assert model.id == "whetstone-tiny"
    assert len(standin.requests) == 3


def test_retry_after_is_honoured(standin: StandIn) -> None:
    wait = Reply(429, {"error": {"message": "later"}}, headers={"Retry-After": "1"})
    standin.script("GET", "/models/whetstone-tiny", wait, Reply(200, MODEL))
    with Whetstone(base_url=standin.url, api_key="k") as client:
        started = time.monotonic()
        client.models.retrieve("whetstone-tiny")
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0


def test_out_of_retries_raises_the_last_error(standin: StandIn) -> None:
    standin.script("GET", "/models/whetstone-tiny", LIMITED)
    with Whetstone(base_url=standin.url, api_key="k", max_retries=1) as client:
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
    with Whetstone(base_url=standin.url, api_key="k", max_retries=5) as client:
        with pytest.raises(BadRequestError) as info:
            client.fine_tuning.jobs.create(model="m", training_file="file-1")
    assert len(standin.requests) == 1
    assert info.value.param == "method.supervised.hyperparameters.n_epochs"
    assert info.value.status_code == 400


def test_5xx_is_retried_with_backoff(standin: StandIn) -> None:
    down = Reply(503, {"error": {"message": "starting"}})
    standin.script("GET", "/models/whetstone-tiny", down, down, Reply(200, MODEL))
    with Whetstone(base_url=standin.url, api_key="k", max_retries=2) as client:
        started = time.monotonic()
        client.models.retrieve("whetstone-tiny")
        elapsed = time.monotonic() - started
    # 0.5 s then 1 s, each less up to 25 % of jitter
    assert 0.375 + 0.75 <= elapsed < 3.0
    assert len(standin.requests) == 3


def test_500_after_retries_is_internal_server_error(standin: StandIn) -> None:
    standin.script(
        "GET", "/models", Reply(500, {"error": {"message": "boom"}}, {"Retry-After": "0"})
    )
    with Whetstone(base_url=standin.url, api_key="k", max_retries=1) as client:
        with pytest.raises(InternalServerError, match="boom"):
            client.models.list()
    assert len(standin.requests) == 2


def test_nothing_listening_is_a_connection_error() -> None:
    with Whetstone(base_url=f"http://127.0.0.1:{free_port()}", api_key="k", max_retries=0) as c:
        with pytest.raises(APIConnectionError):
            c.models.list()


def test_slow_answer_times_out(standin: StandIn) -> None:
    standin.script("GET", "/models", Reply(200, {"object": "list", "data": []}, delay=2.0))
    with Whetstone(base_url=standin.url, api_key="k", timeout=0.3, max_retries=0) as client:
        with pytest.raises(APITimeoutError):
            client.models.list()


def test_async_client_retries_429_then_succeeds(standin: StandIn) -> None:
    standin.script("GET", "/models/whetstone-tiny", LIMITED, LIMITED, Reply(200, MODEL))

    async def go() -> str:
        async with AsyncWhetstone(base_url=standin.url, api_key="k") as client:
            return (await client.models.retrieve("whetstone-tiny")).id

    assert asyncio.run(go()) == "whetstone-tiny"
    assert len(standin.requests) == 3


def test_async_client_does_not_retry_400(standin: StandIn) -> None:
    standin.script("DELETE", "/files/file-1", Reply(400, {"error": {"message": "in use"}}))

    async def go() -> None:
        async with AsyncWhetstone(base_url=standin.url, api_key="k") as client:
            await client.files.delete("file-1")

    with pytest.raises(BadRequestError, match="in use"):
        asyncio.run(go())
    assert len(standin.requests) == 1
