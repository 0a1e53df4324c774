"""A scripted stand-in for the API, in-process: an `httpx.MockTransport` answering what a test
scripts, for the SDK's protocol tests.

The SDK runs as it does against Whetstone (its httpx client, retries, timeouts, SSE parsing);
only the socket is left out: a request reaches `dispatch` as it would reach a server, and a
`Reply` goes back as an `httpx.Response` (a streamed one chunk by chunk). A reply slower than
the request's read timeout is httpx's `ReadTimeout`; a handler may raise any transport error
(a refused connection). `tests/integration/clients/loopback.py` serves the same stand-in on a
loopback port, for the CLI run as a person runs it; the SDK's tests against the real service
are in tests/integration/clients/.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

URL = "http://standin.test/v1"


@dataclass
class Seen:
    """A request the stand-in received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # sent one by one (SSE)
    delay: float = 0.0  # seconds before the answer: past the read timeout, a ReadTimeout


Handler = Callable[[Seen], Reply]


class StandIn:
    """Routes `(METHOD, path)` to scripted replies; records every request."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._routes: dict[tuple[str, str], Handler] = {}

    @property
    def url(self) -> str:
        return URL

    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = handler

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer with these replies in order; the last one repeats."""
        queue = list(replies)

        def handler(_: Seen) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route(method, path, handler)

    def dispatch(self, seen: Seen) -> Reply:
        self.requests.append(seen)
        handler = self._routes.get((seen.method, seen.path))
        if handler is None:
            return Reply(404, {"error": {"message": "no route", "type": "invalid_request_error",
                                         "param": None, "code": None}})  # fmt: skip
        return handler(seen)

    def http(self) -> httpx.Client:
        """An httpx client whose requests this stand-in answers (a sync SDK's `http_client`)."""
        return httpx.Client(transport=httpx.MockTransport(self._answer))

    def async_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._answer))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        parts = urlsplit(str(request.url))
        seen = Seen(
            request.method,
            parts.path.removeprefix("/v1"),
            dict(parse_qsl(parts.query)),
            {k.lower(): v for k, v in request.headers.items()},
            request.content,
        )
        reply = self.dispatch(seen)
        read_timeout = request.extensions.get("timeout", {}).get("read")
        if reply.delay and read_timeout is not None and reply.delay > read_timeout:
            raise httpx.ReadTimeout("timed out", request=request)
        return response(reply)


def response(reply: Reply) -> httpx.Response:
    """The reply as httpx gives it to the client."""
    headers = dict(reply.headers)
    if reply.chunks is not None:
        headers["Content-Type"] = "text/event-stream"
        return httpx.Response(reply.status, headers=headers, stream=_Chunks(reply.chunks))
    data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
    headers["Content-Type"] = "application/json"
    return httpx.Response(reply.status, headers=headers, content=data)


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives in these chunks, to a sync or an async client."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
