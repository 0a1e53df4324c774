"""The chat proxy to the vLLM of a base model.

`ServingClient` forwards a chat completion to the vLLM of its base model (where it is:
`service.models.vllms.VllmRoutes`) over one pool of kept-alive connections: the request
body goes out untouched (the name the user asked for is the name vLLM serves: the base
model's served name or the adapter's `lora_name`), the answer comes back as it is, JSON or
SSE event by event, less the `null`s vLLM writes where OpenAI's schema has an optional field
that is never null (`message.annotations`, `message.function_call`, `delta.role`,
`usage.prompt_tokens_details`, ...: a client generated from the spec refuses them, and the
`openai` package reads them as absent anyway). Failures become
`ServiceError`s in OpenAI's shape: vLLM unreachable or not ready is 503 at once (short
connect timeout), vLLM dying mid-request is 502 (or an error event when the stream has
already begun), vLLM's own errors keep their status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from service.errors import (
    BadGateway,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    ServiceError,
    UpstreamError,
)
from service.models.vllms import VllmRoutes, not_ready
from serving.launcher import http_base, socket_of

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
KEEP_ALIVE_SECONDS = 4.0
_JSON = {"content-type": "application/json"}
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_DONE = b"data: [DONE]\n\n"


class ServingClient:
    """Forwards chat completions to the vLLM of a base model and relays its answer.

    aiohttp, not httpx, on this path: for the same proxied request it costs the API process
    about half the CPU (`bench/serving_latency.py` prints the API's CPU per request)."""

    def __init__(
        self,
        routes: VllmRoutes,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float | None = 600.0,
    ) -> None:
        self.routes = routes
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}

    def _http(self, address: str) -> aiohttp.ClientSession:
        """The connection pool for `address`, made on first use: an aiohttp session belongs
        to the event loop it was made in, which is the server's only once requests arrive.
        One pool for every TCP address, one per Unix socket (a connector has one path)."""
        socket = socket_of(address)
        session = self._sessions.get(socket)
        if session is None:
            # Idle connections go before vLLM closes them (VLLM_HTTP_TIMEOUT_KEEP_ALIVE,
            # 5 s): a request sent as vLLM hangs up would fail, and POSTs are not retried.
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(socket, limit=0, keepalive_timeout=KEEP_ALIVE_SECONDS)
                if socket
                else aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEP_ALIVE_SECONDS)
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sessions[socket] = session
        return session

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()

    async def chat(self, base_model: str, model: str, body: bytes) -> Response:
        """POST `body` to the vLLM of `base_model`; a JSON or SSE response for the caller."""
        address = self.routes.address(base_model)
        url = http_base(address) + CHAT_PATH
        try:
            headers = {**_JSON, **self.routes.auth_headers(base_model)}
            upstream = await self._http(address).post(url, data=body, headers=headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            log.warning("vLLM of %s unreachable at %s: %r", base_model, address, e)
            raise not_ready(base_model) from e
        except TimeoutError as e:
            raise _timeout(base_model) from e
        except aiohttp.ClientError as e:
            raise _broke(base_model, e) from e
        if upstream.status != 200:
            content = await _read_all(upstream, base_model)
            raise upstream_error(upstream.status, content, model)
        if upstream.content_type != "text/event-stream":
            content = await _read_all(upstream, base_model)
            return Response(without_nulls(content), media_type="application/json")
        return _Relay(upstream, base_model)


class _Relay(StreamingResponse):
    """The SSE answer of `upstream`, whose connection is closed the moment the caller is
    gone, and in any case when this response ends. Closing the connection is what tells vLLM
    to abort the request.

    Starlette's own answer to a disconnect, cancelling the stream, is not enough: once the
    caller is gone the server's `send` returns at once, so while vLLM keeps writing, the
    relay reads and drops its events without ever waiting, and the cancellation (delivered
    only to a task found waiting) can miss it for seconds. Closing the connection as soon as
    the disconnect is received ends the stream whatever the relay was doing; the `finally`
    covers the other endings (and a stream the cancellation caught while it waited on the
    caller's socket, whose generator would keep the connection until it is collected)."""

    def __init__(self, upstream: aiohttp.ClientResponse, base_model: str) -> None:
        super().__init__(
            _events(upstream, base_model), media_type="text/event-stream", headers=_SSE_HEADERS
        )
        self._upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_or_close() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._upstream.close()
            return message

        try:
            await super().__call__(scope, receive_or_close, send)
        finally:
            self._upstream.close()


async def _read_all(upstream: aiohttp.ClientResponse, base_model: str) -> bytes:
    try:
        return await upstream.read()
    except TimeoutError as e:
        raise _timeout(base_model) from e
    except aiohttp.ClientError as e:
        raise _broke(base_model, e) from e
    finally:
        upstream.release()


async def _events(upstream: aiohttp.ClientResponse, base_model: str) -> AsyncIterator[bytes]:
    """vLLM's SSE events as they arrive, each whole: bytes after the last event boundary
    wait for the rest of their event. vLLM failing mid-stream ends the stream with an error
    event, and the event it was cut in the middle of is dropped (a client would choke on
    half a JSON object before it reached the error). vLLM ends every answer with `data:
    [DONE]`: a body that ends without it, however its connection ended (a vLLM killed between
    two events can look like a body's proper end), is cut short too."""
    pending = b""
    try:
        async for chunk in upstream.content.iter_any():
            pending += chunk
            end = pending.rfind(b"\n\n") + 2
            if end > 1:
                yield _events_without_nulls(pending[:end])
                if pending[:end].endswith(_DONE):
                    return
                pending = pending[end:]
        if pending.strip():
            yield _events_without_nulls(pending)
        if not pending.strip().endswith(_DONE.strip()):
            raise aiohttp.ClientPayloadError("the answer ended without data: [DONE]")
    except (aiohttp.ClientError, TimeoutError) as e:
        error = _timeout(base_model) if isinstance(e, TimeoutError) else _broke(base_model, e)
        log.warning("stream from vLLM of %s broke: %r", base_model, e)
        yield b"data: " + orjson.dumps(error.body()) + b"\n\n"


# Fields that OpenAI's schema makes optional but not nullable, where vLLM writes `null`: per
# object of a chat completion (or chunk), the keys to leave out when their value is null.
_NOT_NULLABLE: dict[str, tuple[str, ...]] = {
    "completion": ("system_fingerprint",),
    "message": ("annotations", "tool_calls", "function_call"),
    "delta": ("role", "tool_calls", "function_call"),
    "usage": ("prompt_tokens_details", "completion_tokens_details"),
}


def without_nulls(content: bytes) -> bytes:
    """A chat completion (or chunk) as JSON, less the nulls in `_NOT_NULLABLE` (and with the
    `logprobs.refusal` the schema requires, null, where vLLM leaves it out); anything else,
    or an answer that needs none of this, comes back as it is."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content
    if not isinstance(data, dict) or not _conform(data):
        return content
    return orjson.dumps(data)


def _conform(completion: dict[str, Any]) -> bool:
    """Change the answer in place; True when anything changed."""
    objects = [("completion", completion), ("usage", completion.get("usage"))]
    changed = False
    for choice in completion.get("choices") or []:
        if isinstance(choice, dict):
            objects += [("message", choice.get("message")), ("delta", choice.get("delta"))]
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and "refusal" not in logprobs:
                logprobs["refusal"] = None
                changed = True
    for kind, obj in objects:
        if isinstance(obj, dict):
            for key in _NOT_NULLABLE[kind]:
                if key in obj and obj[key] is None:
                    del obj[key]
                    changed = True
    return changed


def _events_without_nulls(events: bytes) -> bytes:
    """Whole SSE events, each `data:` line's chunk less its nulls (`[DONE]` and comments pass)."""
    if b"null" not in events:
        return events
    lines = events.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"data: {") and b"null" in line:
            lines[i] = b"data: " + without_nulls(line[6:])
    return b"\n".join(lines)


def _broke(base_model: str, e: Exception) -> BadGateway:
    log.warning("vLLM of %s failed during a request: %r", base_model, e)
    return BadGateway(
        f"The model server for {base_model} stopped while answering this request "
        "(it is being restarted). Please retry.",
        code="model_server_error",
    )


def _timeout(base_model: str) -> GatewayTimeout:
    return GatewayTimeout(
        f"The model server for {base_model} did not answer in time.", code="timeout"
    )


def upstream_error(status: int, content: bytes, model: str) -> ServiceError:
    """vLLM's error answer as the API's: 4xx keep their status (422 reads 400), 404 is the
    model's, 503 stays 503 and any other 5xx becomes 502 (the upstream failed)."""
    fields = _error_fields(content)
    message = str(fields.get("message") or f"The model server answered {status}.")
    param = fields.get("param") if isinstance(fields.get("param"), str) else None
    code = fields.get("code") if isinstance(fields.get("code"), str) else None
    if status == 404:
        return NotFound(
            f"The model {model} does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    if status in (400, 422):
        return InvalidRequest(message, param=param, code=code)
    if status < 500 or status == 503:
        return UpstreamError(status, message, param, code)
    return UpstreamError(502, f"The model server failed: {message}", param, code)


def _error_fields(content: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"message": content.decode(errors="replace")[:500] or None}
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return error
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data  # older vLLM: the fields at the top level
    return {}
