"""`POST /v1/chat/completions` against a stand-in vLLM (an httpx mock transport).

The stand-in is used because a real vLLM cannot be made to answer 500 or break a stream on
cue; tests/e2e/test_chat.py drives the same paths with the real vLLM where it can.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.serving_client import ServingClient, VllmRoutes
from service.settings import Settings
from tests.unit.service.conftest import ApiClient, create_key

BASE = "whetstone-tiny"
VLLM = "http://vllm.test"
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": BASE,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
}
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", vllm_urls={BASE: VLLM})


@pytest.fixture()
def api(settings: Settings) -> Iterator[ApiClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))


def use_vllm(api: ApiClient, handler: Handler) -> list[httpx.Request]:
    """Route the app's vLLM traffic to `handler`; returns the requests it receives."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    services = api.http.app.state.services  # type: ignore[attr-defined]
    mock = httpx.AsyncClient(transport=httpx.MockTransport(record))
    services.serving = ServingClient(VllmRoutes({BASE: VLLM}), http=mock)
    return seen


def chat(api: ApiClient, body: object, key: str | None = None) -> httpx.Response:
    return api.http.post(
        "/v1/chat/completions", content=json.dumps(body).encode(), headers=api.auth(key)
    )


def body(**extra: object) -> dict[str, object]:
    return {"model": BASE, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_body_goes_to_vllm_untouched_and_the_answer_comes_back(api: ApiClient) -> None:
    seen = use_vllm(api, lambda r: httpx.Response(200, json=ANSWER))
    sent = body(max_tokens=3, temperature=0, some_vllm_option=[1, 2])
    answer = chat(api, sent)
    assert answer.status_code == 200 and answer.json() == ANSWER
    (request,) = seen
    assert request.url == f"{VLLM}/v1/chat/completions"
    assert json.loads(request.content) == sent
    assert "authorization" not in request.headers  # the caller's key stays here


def test_vllm_errors_keep_openai_shape_and_status(api: ApiClient) -> None:
    error = {"error": {"message": "max_tokens is too large", "type": "BadRequestError",
                       "param": "max_tokens", "code": 400}}  # fmt: skip
    use_vllm(api, lambda r: httpx.Response(400, json=error))
    answer = chat(api, body())
    assert answer.status_code == 400
    assert answer.json() == {"error": {"message": "max_tokens is too large",
                             "type": "invalid_request_error", "param": "max_tokens",
                             "code": None}}  # fmt: skip

    use_vllm(api, lambda r: httpx.Response(500, text="engine dead"))
    answer = chat(api, body())
    assert answer.status_code == 502
    assert answer.json()["error"]["type"] == "server_error"
    assert "engine dead" in answer.json()["error"]["message"]


def test_vllm_unreachable_is_503_at_once(api: ApiClient) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    use_vllm(api, refuse)
    started = time.monotonic()
    answer = chat(api, body())
    assert answer.status_code == 503 and time.monotonic() - started < 2
    assert answer.json()["error"]["code"] == "model_not_ready"


def test_vllm_dying_mid_request_is_502(api: ApiClient) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    use_vllm(api, drop)
    answer = chat(api, body())
    assert answer.status_code == 502
    assert "stopped while answering" in answer.json()["error"]["message"]


def test_stream_is_relayed_and_a_broken_stream_ends_with_an_error_event(api: ApiClient) -> None:
    events = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
              b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n']  # fmt: skip

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for event in events:
                yield event
            raise httpx.ReadError("connection reset")

    headers = {"content-type": "text/event-stream"}
    use_vllm(api, lambda r: httpx.Response(200, headers=headers, stream=Broken()))
    with api.http.stream(
        "POST", "/v1/chat/completions", json=body(stream=True), headers=api.auth()
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        received = b"".join(answer.iter_bytes())
    assert received.startswith(b"".join(events))
    last = json.loads(received.split(b"\n\n")[-2].removeprefix(b"data: "))
    assert last["error"]["code"] == "model_server_error"


def test_requests_refused_before_vllm(api: ApiClient) -> None:
    seen = use_vllm(api, lambda r: httpx.Response(200, json=ANSWER))
    no_key = api.http.post("/v1/chat/completions", content=b"not json")
    assert no_key.status_code == 401
    assert chat(api, "a string").status_code == 400
    bad_json = api.http.post("/v1/chat/completions", content=b"{", headers=api.auth())
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    no_model = chat(api, {"messages": []})
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    name = "ft:whetstone-tiny:alpha::nosuch00"
    unknown = chat(api, body(model=name))
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {"message": f"No such model: {name}",
                                       "type": "invalid_request_error", "param": "model",
                                       "code": "model_not_found"}  # fmt: skip
    assert seen == []


def test_registered_base_model_without_a_vllm_is_503(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")  # no URL and no supervisor
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        api = ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))
        answer = chat(api, body())
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "model_not_served"
