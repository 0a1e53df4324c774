"""A small HTTP proxy in front of a running Whetstone that plays the source account of
`whetstone migrate`: it forwards every request as it is, and only where a test asks it

- answers 500 for the content of chosen files (a source failing midway), or cuts their
  content off halfway (a connection lost during the download),
- takes Azure OpenAI's shape (`/openai/v1/...` paths, the key in an `api-key` header),
- answers chat completions itself: a stand-in for the hosted fine-tuned model, which needs
  a vLLM this suite does not start for these tests; it records what it was asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class Source:
    backend: str  # the Whetstone behind it, e.g. http://127.0.0.1:8123
    port: int = 0
    fail_content_of: set[str] = field(default_factory=set)
    cut_content_of: set[str] = field(default_factory=set)
    azure: bool = False
    chat_answers: bool = False
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    served: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}" + ("/openai/v1" if self.azure else "/v1")


def _handler(source: Source) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            error = {"message": message, "type": "server_error", "param": None, "code": None}
            self._reply(status, json.dumps({"error": error}).encode())

        def _forward(self, method: str) -> None:
            path = self.path
            headers = {}
            if source.azure:
                if not path.startswith("/openai/v1/") or "api-key" not in self.headers:
                    self._error(401, "expected /openai/v1/... with an api-key header")
                    return
                path = path.removeprefix("/openai")
                headers["Authorization"] = f"Bearer {self.headers['api-key']}"
            elif "Authorization" in self.headers:
                headers["Authorization"] = self.headers["Authorization"]
            source.served.append(f"{method} {path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = path.split("?")[0].strip("/").split("/")
            if parts[-1:] == ["content"] and parts[-2] in source.fail_content_of:
                self._error(500, "The server had an error while processing your request.")
                return
            if parts[-1:] == ["content"] and parts[-2] in source.cut_content_of:
                whole = httpx.get(source.backend + path, headers=headers).content
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(whole)))
                self.end_headers()
                self.wfile.write(whole[: len(whole) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if source.chat_answers and path.startswith("/v1/chat/completions"):
                self._chat(json.loads(body))
                return
            if body:
                headers["Content-Type"] = self.headers.get("Content-Type", "application/json")
            answer = httpx.request(method, source.backend + path, content=body, headers=headers)
            self._reply(answer.status_code, answer.content,
                        answer.headers.get("content-type", "application/json"))  # fmt: skip

        def _chat(self, request: dict[str, Any]) -> None:
            source.chat_requests.append(request)
            last = request["messages"][-1]["content"]
            completion = {
                "id": "chatcmpl-standin", "object": "chat.completion", "created": 0,
                "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"source says: {last}"}}],
            }  # fmt: skip
            self._reply(200, json.dumps(completion).encode())

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def do_DELETE(self) -> None:
            self._forward("DELETE")

    return Handler


@contextmanager
def source_proxy(source: Source) -> Iterator[Source]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(source))
    source.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield source
    finally:
        server.shutdown()
        server.server_close()
