"""A tiny scripted HTTP server on a loopback port, standing in for the API in protocol tests.

It speaks real HTTP over a real socket, so the SDK's httpx transport, retries, timeouts and
SSE parsing run as they do against Whetstone; it only answers what a test scripts. The SDK's
integration tests against the real service are in tests/integration/clients/.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Seen:
    """A request the server received."""

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
    chunks: list[bytes] | None = None  # sent one by one (SSE), flushed after each
    delay: float = 0.0


Handler = Callable[[Seen], Reply]


class StandIn:
    """Routes `(METHOD, path)` to scripted replies; records every request."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._routes: dict[tuple[str, str], Handler] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

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


def _make_handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                parts.path.removeprefix("/v1"),
                dict(parse_qsl(parts.query)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            reply = standin.dispatch(seen)
            if reply.delay:
                threading.Event().wait(reply.delay)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.chunks is not None:
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in reply.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True
                return
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    return Handler
