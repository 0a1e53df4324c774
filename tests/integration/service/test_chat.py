"""`POST /v1/chat/completions` against a stand-in vLLM: a loopback HTTP server that answers
each request as the test says.

The stand-in is used because a real vLLM cannot be made to answer 500 or break a stream on
cue; tests/e2e/test_chat.py drives the same paths with the real vLLM where it can.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from contracts.layout import final_adapter_prefix
from service.app import create_app
from service.chat import serving_client
from service.chat.serving_client import ServingClient
from service.db.tables import FineTunedModel, FineTuningJob
from service.fine_tuning import service as jobs
from service.fine_tuning.status import JobStatus
from service.keys import project_repository as projects
from service.models import lifecycle
from service.models.vllms import VllmRoutes
from service.settings import Settings
from tests.conftest import free_port, wait_for_port
from tests.unit.service.conftest import ApiClient, create_key

BASE = "whetstone-tiny"
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": BASE,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
}
Reply = Callable[[BaseHTTPRequestHandler], None]
JSON = "application/json"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


def reply(
    status: int, content: bytes | dict[str, object], media: str = "application/json"
) -> Reply:
    """Answer with `status` and `content` (JSON for a dict), then keep the connection."""
    data = json.dumps(content).encode() if isinstance(content, dict) else content

    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("content-type", media)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return send


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without answering, as a vLLM that dies does."""
    handler.close_connection = True


class Relayed:
    """What the service's relay has read from vLLM so far: a spy on
    `serving_client._events_without_nulls`, which every whole event read passes through (the
    relay itself runs as it would)."""

    def __init__(self) -> None:
        self.data = b""

    def wait_for(self, data: bytes, timeout: float = 10.0) -> None:
        """Until the relay has read `data`. A stand-in that breaks a stream waits for this:
        aiohttp raises a broken payload ahead of the bytes it still holds when both arrive
        in the same moment, and the test is about what the relay does with events it has."""
        deadline = time.monotonic() + timeout
        while data not in self.data and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture()
def relayed(monkeypatch: pytest.MonkeyPatch) -> Relayed:
    spy = Relayed()
    original = serving_client._events_without_nulls

    def seen(events: bytes) -> bytes:
        spy.data += events
        return original(events)

    monkeypatch.setattr(serving_client, "_events_without_nulls", seen)
    return spy


def start_sse(handler: BaseHTTPRequestHandler, events: list[bytes]) -> None:
    """Start an SSE answer (chunked, as vLLM's) and send `events`, a chunk each."""
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    for event in events:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        handler.wfile.flush()


def stream_then_break(events: list[bytes], relayed: Relayed) -> Reply:
    """Start an SSE answer (chunked, as vLLM's), send `events`, then, once the service has
    read them, drop the connection without the last chunk."""

    def send(handler: BaseHTTPRequestHandler) -> None:
        start_sse(handler, events)
        relayed.wait_for(b"".join(events))
        handler.close_connection = True

    return send


@dataclass
class StandIn:
    """A vLLM stand-in on a loopback port; `answer` replies to each request."""

    url: str
    answer: Reply = field(default=hang_up)
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture()
def vllm() -> Iterator[StandIn]:
    port = free_port()
    stand_in = StandIn(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            stand_in.seen.append(Seen(self.path, headers, body, self.client_address[1]))
            stand_in.answer(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stand_in
    server.shutdown()
    server.server_close()


@pytest.fixture()
def settings(tmp_path: Path, vllm: StandIn) -> Settings:
    return Settings(data_dir=tmp_path / "data", vllm_urls={BASE: vllm.url})


def file_and_job(api: ApiClient, data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A training file of alpha's with `data`, and a job of alpha's on it (validating)."""
    file = api.http.post(
        "/v1/files",
        headers=api.auth(),
        files={"file": ("train.jsonl", data, "application/jsonl")},
        data={"purpose": "fine-tune"},
    ).json()
    job = api.http.post(
        "/v1/fine_tuning/jobs",
        json={"model": BASE, "training_file": file["id"]},
        headers=api.auth(),
    ).json()
    return file, job


def tuned_model(api: ApiClient) -> str:
    """A model of project `alpha`: a job created through the API, then recorded as succeeded
    as the scheduler does (no adapter: the stand-in answers for any model)."""
    line = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    _file, job = file_and_job(api, (json.dumps(line) + "\n").encode() * 10)
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        row = session.get(FineTuningJob, job["id"])
        jobs.transition(session, row, JobStatus.QUEUED)
        jobs.transition(session, row, JobStatus.RUNNING)
        jobs.mark_succeeded(session, row, trained_tokens=10)
        name = row.output_model
        lifecycle.publish(session, services.store, row, name, "final", final_adapter_prefix(row.id))
    return name


def delete_elsewhere(api: ApiClient, model: str) -> None:
    """Mark `model` deleted in the database, as another API replica would."""
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        row = session.get(FineTunedModel, model)
        assert row is not None
        row.deleted_at = 1


@pytest.fixture()
def api(settings: Settings) -> Iterator[ApiClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))


def chat(api: ApiClient, body: object, key: str | None = None) -> httpx.Response:
    return api.http.post(
        "/v1/chat/completions", content=json.dumps(body).encode(), headers=api.auth(key)
    )


def body(**extra: object) -> dict[str, object]:
    return {"model": BASE, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_body_goes_to_vllm_untouched_and_the_answer_comes_back(
    api: ApiClient, vllm: StandIn
) -> None:
    vllm.answer = reply(200, ANSWER)
    sent = body(max_tokens=3, temperature=0, some_vllm_option=[1, 2])
    for _ in range(3):  # over one kept-alive connection
        answer = chat(api, sent)
        assert answer.status_code == 200 and answer.json() == ANSWER
    assert len(vllm.seen) == 3
    assert len({seen.client_port for seen in vllm.seen}) == 1
    request = vllm.seen[0]
    assert request.path == "/v1/chat/completions"
    forwarded = json.loads(request.body)
    assert forwarded.pop("cache_salt")  # the project's own (test_cache_salt_...)
    assert forwarded == sent
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # the caller's key stays here


def test_vllm_errors_keep_openai_shape_and_status(api: ApiClient, vllm: StandIn) -> None:
    error = {"error": {"message": "max_tokens is too large", "type": "BadRequestError",
                       "param": "max_tokens", "code": 400}}  # fmt: skip
    vllm.answer = reply(400, error)
    answer = chat(api, body())
    assert answer.status_code == 400
    assert answer.json() == {"error": {"message": "max_tokens is too large",
                             "type": "invalid_request_error", "param": "max_tokens",
                             "code": None}}  # fmt: skip

    vllm.answer = reply(500, b"engine dead", "text/plain")
    answer = chat(api, body())
    assert answer.status_code == 502
    assert answer.json()["error"]["type"] == "server_error"
    assert "engine dead" in answer.json()["error"]["message"]


def test_vllm_unreachable_is_503_at_once(api: ApiClient) -> None:
    services = api.http.app.state.services  # type: ignore[attr-defined]
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    # A connect timeout far beyond the bound below: waiting for it, or retrying, would show.
    services.serving = ServingClient(VllmRoutes({BASE: nobody}), connect_timeout=60)
    started = time.monotonic()
    answer = chat(api, body())
    assert answer.status_code == 503 and time.monotonic() - started < 30
    assert answer.json()["error"]["code"] == "model_not_ready"


def test_vllm_dying_mid_request_is_502(api: ApiClient, vllm: StandIn) -> None:
    vllm.answer = hang_up
    answer = chat(api, body())
    assert answer.status_code == 502
    assert "stopped while answering" in answer.json()["error"]["message"]


def test_stream_is_relayed_and_a_broken_stream_ends_with_an_error_event(
    api: ApiClient, vllm: StandIn, relayed: Relayed
) -> None:
    events = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
              b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n']  # fmt: skip
    vllm.answer = stream_then_break(events, relayed)
    with api.http.stream(
        "POST", "/v1/chat/completions", json=body(stream=True), headers=api.auth()
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        received = b"".join(answer.iter_bytes())
    assert received.startswith(b"".join(events))
    last = json.loads(received.split(b"\n\n")[-2].removeprefix(b"data: "))
    assert last["error"]["code"] == "model_server_error"


def test_an_event_cut_by_a_broken_stream_is_dropped_before_the_error_event(
    api: ApiClient, vllm: StandIn, relayed: Relayed
) -> None:
    """vLLM killed in the middle of writing an event: the caller gets the whole events, then
    the error event, never the half event (the openai package would fail to parse it)."""
    whole = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    half = b'data: {"choices":[{"del'

    def cut_mid_chunk(handler: BaseHTTPRequestHandler) -> None:
        start_sse(handler, [])
        # One write, so the half event reaches the service with the whole one: once the
        # whole one is relayed, the half waits in the relay when the connection drops.
        chunk = whole + half
        handler.wfile.write(b"%x\r\n%s" % (len(chunk) + 40, chunk))  # dies inside the chunk
        handler.wfile.flush()
        relayed.wait_for(whole)
        handler.close_connection = True

    vllm.answer = cut_mid_chunk
    with api.http.stream(
        "POST", "/v1/chat/completions", json=body(stream=True), headers=api.auth()
    ) as answer:
        received = b"".join(answer.iter_bytes())
    events = received.split(b"\n\n")
    assert events[0] + b"\n\n" == whole and events[-1] == b""
    for event in events[1:-1]:
        data = json.loads(event.removeprefix(b"data: "))  # every event parses
        assert data["error"]["code"] == "model_server_error"
    assert len(events) == 3


@pytest.mark.parametrize("sent", [0, 1], ids=["before-any-event", "after-an-event"])
def test_a_stream_that_ends_without_done_ends_with_an_error_event(
    api: ApiClient, vllm: StandIn, relayed: Relayed, sent: int
) -> None:
    """vLLM gone between two events (or before the first): however the connection ends, even
    as a well-formed end of the body, an answer without vLLM's `data: [DONE]` is cut short, and
    the caller is told so instead of taking a part of the answer for the whole of it."""
    events = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'][:sent]

    def end_without_done(handler: BaseHTTPRequestHandler) -> None:
        start_sse(handler, events)
        handler.wfile.write(b"0\r\n\r\n")  # the body's proper end, without data: [DONE]
        handler.wfile.flush()

    vllm.answer = end_without_done
    with api.http.stream(
        "POST", "/v1/chat/completions", json=body(stream=True), headers=api.auth()
    ) as answer:
        received = b"".join(answer.iter_bytes())
    assert received.startswith(b"".join(events))
    last = json.loads(received.split(b"\n\n")[-2].removeprefix(b"data: "))
    assert last["error"]["code"] == "model_server_error"


def test_a_caller_gone_mid_stream_closes_the_connection_to_vllm(
    settings: Settings, vllm: StandIn
) -> None:
    """Under uvicorn, a caller that stops reading a stream and then hangs up: the service
    closes its connection to vLLM at once (which is how vLLM learns to abort), whether the
    relay was waiting on vLLM or on the caller's full socket when the caller left."""
    event = b'data: {"choices":[{"delta":{"content":"%s"}}]}\n\n' % (b"x" * 4000)
    vllm_saw_close = threading.Event()

    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        try:
            while True:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                handler.wfile.flush()
        except OSError:
            vllm_saw_close.set()

    vllm.answer = endless
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        with app.state.services.sessions() as session, session.begin():
            key = projects.create_api_key(session, projects.get_or_create_project(session, "a"))
        for _ in range(3):
            vllm_saw_close.clear()
            content = json.dumps(body(stream=True)).encode()
            caller = socket.create_connection(("127.0.0.1", port))
            caller.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                b"authorization: Bearer %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (key.encode(), len(content), content)
            )
            assert caller.recv(65536).startswith(b"HTTP/1.1 200")
            # Not reading, so the service's writes to the caller back up; the test holds
            # whichever the relay waits on when the caller leaves, the wait makes this likely.
            time.sleep(0.3)
            caller.close()
            assert vllm_saw_close.wait(2), "the service kept reading vLLM for a caller gone"
    finally:
        server.should_exit = True
        thread.join(15)


def test_requests_refused_before_vllm(api: ApiClient, vllm: StandIn) -> None:
    vllm.answer = reply(200, ANSWER)
    no_key = api.http.post("/v1/chat/completions", content=b"not json")
    assert no_key.status_code == 401
    bad_key = api.http.post(
        "/v1/chat/completions", content=b"not json", headers=api.auth("sk-whet-nosuchkey0000")
    )
    assert bad_key.status_code == 401
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
    assert vllm.seen == []


def test_registered_base_model_without_a_vllm_is_503(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")  # no URL and no supervisor
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        api = ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))
        answer = chat(api, body())
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "model_not_served"


def test_a_model_used_then_deleted_is_refused_at_once(api: ApiClient, vllm: StandIn) -> None:
    vllm.answer = reply(200, ANSWER)
    model = tuned_model(api)
    assert chat(api, body(model=model)).status_code == 200
    assert chat(api, body(model=model), key=api.key_b).status_code == 404  # not beta's
    assert api.http.delete(f"/v1/models/{model}", headers=api.auth()).json()["deleted"]
    gone = chat(api, body(model=model))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    chats = [seen for seen in vllm.seen if seen.path == "/v1/chat/completions"]
    assert [json.loads(seen.body)["model"] for seen in chats] == [model]


@pytest.mark.parametrize("cache_seconds", [0.0, 0.5])
def test_a_model_deleted_by_another_replica_is_refused_within_the_cache_time(
    tmp_path: Path, vllm: StandIn, cache_seconds: float
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        vllm_urls={BASE: vllm.url},
        chat_access_cache_seconds=cache_seconds,
    )
    vllm.answer = reply(200, ANSWER)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        api = ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))
        model = tuned_model(api)
        assert chat(api, body(model=model)).status_code == 200
        delete_elsewhere(api, model)
        time.sleep(cache_seconds)  # the cache's time must pass; a slow machine waits longer
        assert chat(api, body(model=model)).status_code == 404


def test_cache_salt_is_the_projects_own_whatever_the_caller_sends(
    api: ApiClient, vllm: StandIn
) -> None:
    """vLLM shares cached prompt prefixes between requests of one `cache_salt` only: every
    request of a project carries the project's, so another project cannot time its
    prompts; a caller's own salt divides its project's cache and never names another's."""
    vllm.answer = reply(200, ANSWER)
    chat(api, body())
    chat(api, body())
    chat(api, body(), key=api.key_b)
    salts = [json.loads(seen.body)["cache_salt"] for seen in vllm.seen]
    assert salts[0] == salts[1] != salts[2]
    chat(api, body(cache_salt=salts[2]))  # alpha asks for beta's salt
    chat(api, body(cache_salt="mine"))
    asked = [json.loads(seen.body)["cache_salt"] for seen in vllm.seen[3:]]
    assert asked[0] not in salts and asked[1] not in salts and asked[0] != asked[1]
    bad = chat(api, body(cache_salt=7))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cache_salt"


def test_chat_is_relayed_over_a_unix_socket(settings: Settings, tmp_path: Path) -> None:
    """A base model whose vLLM listens on a Unix socket (`unix:/path` in
    `WHETSTONE_VLLM_URLS`, what `whetstone up` does): the relay speaks over the socket."""
    import socketserver

    path = tmp_path / "vllm.sock"
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # http.server's name
            seen.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            reply(200, ANSWER)(self)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args: object) -> None:
            pass

    server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        unix = settings.model_copy(update={"vllm_urls": {BASE: f"unix:{path}"}})
        with TestClient(create_app(unix), raise_server_exceptions=False) as http:
            api = ApiClient(http, unix, create_key(http, "alpha"), create_key(http, "beta"))
            answer = chat(api, body())
            assert answer.status_code == 200 and answer.json() == ANSWER
            assert json.loads(seen[0])["model"] == BASE
    finally:
        server.shutdown()
        server.server_close()


# What vLLM 0.32 writes (its pydantic models serialized as its server does): nulls where
# OpenAI's schema has optional arrays and objects that are never null.
VLLM_COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": BASE,
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "hi", "refusal": None, "annotations": None,
                    "audio": None, "function_call": None, "reasoning": None},
        "logprobs": None, "finish_reason": "stop", "stop_reason": None, "token_ids": None,
        "routed_experts": None,
    }],
    "service_tier": None, "system_fingerprint": None,
    "usage": {"prompt_tokens": 5, "total_tokens": 7, "completion_tokens": 2,
              "prompt_tokens_details": None, "completion_tokens_details": None},
    "prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None,
    "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None,
}  # fmt: skip
VLLM_CHUNKS = [
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": BASE,
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "reasoning": None},
                  "logprobs": None, "finish_reason": None, "stop_reason": None,
                  "token_ids": None}],
     "usage": None, "system_fingerprint": None},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": BASE,
     "choices": [{"index": 0, "delta": {"role": None, "content": "hi", "tool_calls": None},
                  "logprobs": {"content": [{"token": "hi", "logprob": -0.1, "bytes": None,
                                            "top_logprobs": []}]},
                  "finish_reason": "stop"}]},
]  # fmt: skip


def _sse(chunks: list[dict[str, object]]) -> bytes:
    return b"".join(b"data: %s\n\n" % json.dumps(c).encode() for c in chunks) + b"data: [DONE]\n\n"


def test_relayed_answers_carry_no_null_where_openais_schema_has_none(
    api: ApiClient, vllm: StandIn
) -> None:
    from tests.unit.service.test_openai_schemas import assert_matches

    vllm.answer = reply(200, VLLM_COMPLETION)
    answer = chat(api, body())
    assert answer.status_code == 200
    message = answer.json()["choices"][0]["message"]
    assert "annotations" not in message and "function_call" not in message
    assert message["content"] == "hi" and message["refusal"] is None  # nullable: kept
    assert_matches("CreateChatCompletionResponse", answer.json())

    vllm.answer = reply(200, _sse(VLLM_CHUNKS), "text/event-stream")
    with api.http.stream(
        "POST", "/v1/chat/completions", json=body(stream=True), headers=api.auth()
    ) as streamed:
        events = b"".join(streamed.iter_bytes()).split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert len(chunks) == 2 and chunks[1]["choices"][0]["delta"] == {"content": "hi"}
    for chunk in chunks:
        assert_matches("CreateChatCompletionStreamResponse", chunk)
