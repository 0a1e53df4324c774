"""A real HTTP server that takes webhook deliveries: it answers each POST with the next
status of its script (then 200), after an optional delay, and keeps what it got."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    answer: bytes = b""  # the body of every answer
    location: str | None = None  # sent as `location` (a redirect, with a 3xx status)
    gate: threading.Event | None = None  # when set, each answer waits for it

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.got) >= count, f"{self.url} got {len(self.got)} of {count} deliveries"
        return self.got


@contextmanager
def receiver(
    statuses: list[int] | None = None, delay: float = 0.0, **options: object
) -> Iterator[Receiver]:
    state = Receiver(url="", statuses=list(statuses or []), delay=delay, **options)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(state.delay)  # the endpoint's own slowness, what a test asks for
            if state.gate is not None:
                state.gate.wait(30)
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            if state.location is not None:
                self.send_header("location", state.location)
            self.send_header("content-length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
