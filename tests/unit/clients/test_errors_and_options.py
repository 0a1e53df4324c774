"""Error mapping and client options, against the in-process stand-in (`standin.py`)."""

from __future__ import annotations

import inspect

import pytest

from clients.sdk import (
    APIStatusError,
    AsyncWhetstone,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    Whetstone,
)

from .standin import Reply, StandIn


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_each_status_maps_to_its_class_with_the_error_fields(
    standin: StandIn, status: int, cls: type[APIStatusError]
) -> None:
    error = {"message": f"status {status}", "type": "t", "param": "p", "code": "c"}
    standin.script("GET", "/files/file-x", Reply(status, {"error": error}))
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), max_retries=0
    ) as client:
        with pytest.raises(cls) as info:
            client.files.retrieve("file-x")
    exc = info.value
    assert type(exc) is cls
    assert (exc.message, exc.type, exc.param, exc.code) == (f"status {status}", "t", "p", "c")
    assert exc.status_code == status
    assert f"status {status}" in str(exc)


def test_error_without_openai_shape_keeps_the_text(standin: StandIn) -> None:
    standin.script("GET", "/models", Reply(502, b"bad gateway"))
    with Whetstone(
        base_url=standin.url, api_key="k", http_client=standin.http(), max_retries=0
    ) as client:
        with pytest.raises(InternalServerError, match="bad gateway") as info:
            client.models.list()
    assert info.value.param is None


def test_key_is_sent_as_bearer(standin: StandIn) -> None:
    standin.script("GET", "/models", Reply(200, {"object": "list", "data": []}))
    with Whetstone(base_url=standin.url, api_key="wh-secret", http_client=standin.http()) as client:
        client.models.list()
    assert standin.requests[0].headers["authorization"] == "Bearer wh-secret"


def test_base_url_and_key_fall_back_to_environment(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHETSTONE_BASE_URL", standin.url.removesuffix("/v1"))
    monkeypatch.setenv("WHETSTONE_API_KEY", "wh-env")
    standin.script("GET", "/models", Reply(200, {"object": "list", "data": []}))
    with Whetstone(http_client=standin.http()) as client:
        assert client.base_url == standin.url + "/"
        client.models.list()
    assert standin.requests[0].headers["authorization"] == "Bearer wh-env"


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHETSTONE_BASE_URL", "http://env:1")
    monkeypatch.setenv("WHETSTONE_API_KEY", "wh-env")
    client = Whetstone(base_url="http://arg:2/v1/", api_key="wh-arg")
    assert (client.base_url, client.api_key) == ("http://arg:2/v1/", "wh-arg")
    client.close()


def test_ids_with_colons_reach_the_server_intact(standin: StandIn) -> None:
    name = "ft:whetstone-tiny:proj::abc12345"
    deleted = {"id": name, "object": "model", "deleted": True}
    standin.script("DELETE", f"/models/{name}", Reply(200, deleted))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        assert client.models.delete(name).deleted


def test_methods_show_their_own_name_parameters_and_help() -> None:
    """Each resource method is written once for both clients; each client's shows it as its
    own: a sync function there, a coroutine function in the async client."""
    sync, asynchronous = Whetstone(api_key="k"), AsyncWhetstone(api_key="k")
    wait, async_wait = sync.fine_tuning.jobs.wait, asynchronous.fine_tuning.jobs.wait
    for method in (wait, async_wait):
        assert method.__name__ == "wait"
        assert str(inspect.signature(method)) == (
            "(fine_tuning_job_id: 'str', *, poll_interval: 'float' = 5.0, "
            "timeout: 'float | None' = None)"
        )
        assert method.__doc__ and method.__doc__.startswith("Poll until the job is final")
    assert not inspect.iscoroutinefunction(wait)
    assert inspect.iscoroutinefunction(async_wait)
    assert inspect.iscoroutinefunction(asynchronous.files.retrieve)
    sync.close()
