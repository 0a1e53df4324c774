"""The API caps a request's line and headers: past `WHETSTONE_MAX_HEADER_BYTES` it answers 431
in OpenAI's shape instead of reading megabytes of headers into memory."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from .conftest import start_server


def _send_until_answered(port: int, head: bytes, filler: int) -> bytes:
    """Send `head`, then header bytes 16 KiB at a time until the server answers (or 2 MB)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        s.setblocking(False)
        sent = 0
        while sent < filler:
            try:
                if answer := s.recv(65536):
                    return answer
            except BlockingIOError:
                pass
            try:
                s.sendall(b"a" * 16384)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += 16384
        s.settimeout(10)
        return s.recv(65536)


def test_headers_past_the_cap_are_431_and_requests_under_it_are_served(tmp_path: Path) -> None:
    with start_server(tmp_path, extra_env={"WHETSTONE_MAX_HEADER_BYTES": "8192"}) as server:
        port = int(server.env["WHETSTONE_PORT"])
        answer = _send_until_answered(
            port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ", 2_000_000
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431"), answer[:200]
        assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"
        ok = {"Authorization": f"Bearer {server.key_a}", "X-Fair": "b" * 4000}
        with httpx.Client(base_url=server.base_url) as client:  # one kept-alive connection
            for _ in range(3):
                assert client.get("/models", headers=ok).status_code == 200
