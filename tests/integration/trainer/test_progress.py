"""The progress channel over HTTP: bearer token, JSON body, and the service's reply obeyed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from contracts.messages import Heartbeat
from trainer.progress import HttpChannel, Progress


def test_http_channel_posts_with_the_token_and_keeps_the_first_stop_request() -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    replies = iter(["continue", "pause", "continue", "cancel"])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("Authorization"), body))
            data = json.dumps({"action": next(replies)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/internal/v1/jobs/x/report"
        progress = Progress(HttpChannel(url, "secret"), heartbeat_seconds=0)
        assert progress.send(Heartbeat(step=1)) == "continue"
        assert progress.send(Heartbeat(step=2)) == "pause"
        assert progress.send(Heartbeat(step=3)) == "pause"  # a stop request sticks
        assert progress.send(Heartbeat(step=4)) == "cancel"  # cancel wins
    finally:
        server.shutdown()
    assert [auth for auth, _ in received] == ["Bearer secret"] * 4
    assert [body["step"] for _, body in received] == [1, 2, 3, 4]
