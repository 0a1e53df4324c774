"""Request bodies against a running server (`python -m service`, uvicorn): capped per route,
and refused before a byte is read when the caller has no known key.

Raw sockets, because what is shown is what the server does *before* the body arrives: the
tests send a request's head only (or a few bytes of its body) and read the answer, which
can only come back if the server did not wait for the rest.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import Server, start_server

MB = 1024 * 1024
JSON_CAP = 64 * 1024
CHAT_CAP = 256 * 1024
FILE_CAP = 256 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "WHETSTONE_MAX_JSON_BODY_BYTES": str(JSON_CAP),
        "WHETSTONE_MAX_CHAT_BODY_BYTES": str(CHAT_CAP),
        "WHETSTONE_MAX_FILE_BYTES": str(FILE_CAP),
        "WHETSTONE_RATE_LIMIT_REQUESTS_PER_MINUTE": "0",
    }
    with start_server(tmp_path_factory.mktemp("body-limits"), extra_env=env) as running:
        yield running


def _connect(server: Server) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    return sock


def _head(path: str, key: str | None, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: whetstone", "Content-Type: application/json"]
    lines += [f"Authorization: Bearer {key}"] if key else []
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and JSON body of the one response on `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, json.loads(body)


def _closed(sock: socket.socket) -> bool:
    """The server closed the connection (what the caller still sends is never read)."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _job_body(size: int) -> bytes:
    body = {"model": "whetstone-tiny", "training_file": "file-x", "suffix": "x" * size}
    return json.dumps(body).encode()


@pytest.mark.parametrize("key", [None, "sk-whet-bogus-key-0123456789"])
@pytest.mark.parametrize("path", ["/v1/fine_tuning/jobs", "/v1/chat/completions", "/v1/files"])
def test_a_100_mb_body_without_a_known_key_is_401_before_any_byte_is_read(
    server: Server, key: str | None, path: str
) -> None:
    with _connect(server) as sock:
        sock.sendall(_head(path, key, Content_Length=str(100 * MB)))  # and no body at all
        status, headers, body = _answer(sock)
        assert status == 401, body
        assert body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert headers["connection"] == "close" and _closed(sock)


def test_a_chunked_body_without_a_known_key_is_401_before_any_byte_is_read(
    server: Server,
) -> None:
    with _connect(server) as sock:
        sock.sendall(_head("/v1/chat/completions", "bogus", Transfer_Encoding="chunked"))
        status, _, body = _answer(sock)
        assert status == 401 and "Incorrect API key" in body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/v1/fine_tuning/jobs", JSON_CAP), ("/v1/chat/completions", CHAT_CAP),
     ("/v1/uploads", JSON_CAP), ("/v1/webhook_endpoints", JSON_CAP)],
)  # fmt: skip
def test_a_content_length_over_the_routes_cap_is_413_before_the_body_is_read(
    server: Server, path: str, cap: int
) -> None:
    with _connect(server) as sock:
        sock.sendall(_head(path, server.key_a, Content_Length=str(cap + 1)))
        status, headers, body = _answer(sock)
        assert status == 413
        assert body == {"error": {
            "message": f"Request body too large: this endpoint accepts at most {cap} bytes.",
            "type": "invalid_request_error", "param": None, "code": "request_too_large",
        }}  # fmt: skip
        assert headers["connection"] == "close" and _closed(sock)


def test_a_chunked_body_is_cut_at_the_cap(server: Server) -> None:
    """No Content-Length: the body is counted as it arrives and refused at the cap, while
    the caller would still send more."""
    chunk = b"x" * 16384
    with _connect(server) as sock:
        head = _head("/v1/fine_tuning/jobs", server.key_a, Transfer_Encoding="chunked")
        start = b'{"model": "whetstone-tiny", "suffix": "'
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(start), start))
        try:
            for _ in range(JSON_CAP // len(chunk) + 8):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut off at the cap: the answer is already on its way
        status, _, body = _answer(sock)
        assert status == 413 and body["error"]["code"] == "request_too_large"  # type: ignore[index]
        assert _closed(sock)


def test_a_chunked_upload_is_cut_at_its_cap_and_nothing_is_stored(server: Server) -> None:
    """`POST /v1/files` reads its body in a worker thread as it streams to the store: cut
    at the file cap plus the form's allowance, it is a 413 and leaves no file."""
    boundary = "b0undary"
    head = _head("/v1/files", server.key_a, Transfer_Encoding="chunked").replace(
        b"Content-Type: application/json",
        f"Content-Type: multipart/form-data; boundary={boundary}".encode(),
    )
    line = (
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
    ).encode()
    block = line * 200
    with _connect(server) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(start), start))
        try:
            for _ in range(4 * FILE_CAP // len(block)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = _answer(sock)
        assert status == 413 and body["error"]["code"] == "request_too_large"  # type: ignore[index]
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        listed = http.get("/files", headers={"Authorization": f"Bearer {server.key_a}"})
        assert listed.json()["data"] == []
    stored = server.data_dir / "objects" / "files"  # temporaries of the cut upload included
    assert not stored.exists() or not any(stored.iterdir())


def test_bodies_under_their_caps_still_work(server: Server) -> None:
    """Chat takes a body larger than the JSON cap (here no vLLM serves: 503, not 413)."""
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {server.key_a}"}
        message = {"role": "user", "content": "x" * (2 * JSON_CAP)}
        chat = {"model": "whetstone-tiny", "messages": [message]}
        answer = http.post("/chat/completions", json=chat, headers=auth)
        assert answer.status_code not in (401, 413), answer.text
        job = http.post("/fine_tuning/jobs", content=_job_body(100), headers=auth)
        assert job.status_code == 400, job.text
        assert job.json()["error"]["code"] != "request_too_large"


def test_large_keyless_bodies_in_parallel_leave_the_apis_memory_flat(server: Server) -> None:
    """Four 64 MB bodies sent in parallel without a key, two declared and two chunked: the
    API's peak memory grows by less than 32 MB (it read none of them)."""
    before = _peak_rss_mb(server.proc.pid)
    block = b"[" * MB
    errors: list[BaseException] = []

    def attack(path: str, chunked: bool) -> None:
        try:
            with _connect(server) as sock:
                framing = {"Transfer_Encoding": "chunked"} if chunked else {
                    "Content_Length": str(64 * MB)}  # fmt: skip
                sock.sendall(_head(path, None, **framing))
                try:
                    for _ in range(64):
                        sock.sendall(b"%x\r\n%s\r\n" % (MB, block) if chunked else block)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused and closed: what is left is never read
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    targets = [("/v1/fine_tuning/jobs", False), ("/v1/chat/completions", True),
               ("/v1/uploads", True), ("/v1/files", False)]  # fmt: skip
    threads = [threading.Thread(target=attack, args=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert server.proc.poll() is None
    grown = _peak_rss_mb(server.proc.pid) - before
    assert grown < 32, f"the API's peak memory grew by {grown:.0f} MB"
    with httpx.Client(base_url=server.base_url, timeout=30) as http:  # and it still answers
        auth = {"Authorization": f"Bearer {server.key_a}"}
        assert http.get("/files", headers=auth).status_code == 200
