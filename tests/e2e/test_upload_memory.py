"""A 1 GB dataset uploads with the server's memory flat (peak RSS under 300 MB)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import start_server

GB = 1_000_000_000
BOUNDARY = "whetstone-test-boundary"


def _block() -> bytes:
    lines = []
    for i in range(2000):
        example = {
            "messages": [
                {"role": "user", "content": f"Question {i} about Veloria? " * 4},
                {"role": "assistant", "content": f"Answer {i}: the glass bridges of Quessa. " * 6},
            ]
        }
        lines.append(json.dumps(example).encode() + b"\n")
    return b"".join(lines)


def _body(total: int) -> Iterator[bytes]:
    """The multipart body, generated as it is sent: the test never holds the file."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        "\r\n"
    ).encode()
    block = _block()
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.slow
def test_one_gigabyte_upload_keeps_server_memory_flat(tmp_path: Path) -> None:
    with start_server(tmp_path) as server:
        headers = {
            "Authorization": f"Bearer {server.key_a}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as http:
            r = http.post("/files", content=_body(GB))
            assert r.status_code == 200, r.text
            size = r.json()["bytes"]
            assert size >= GB
            peak = _peak_rss_mb(server.proc.pid)
            listed = http.get("/files").json()["data"]
            assert [f["bytes"] for f in listed] == [size]
            # the stored object is the whole file (the content endpoint streams it back)
            with http.stream("GET", f"/files/{r.json()['id']}/content") as content:
                assert sum(len(c) for c in content.iter_bytes()) == size
            peak = max(peak, _peak_rss_mb(server.proc.pid))
    print(f"1 GB upload: {size} bytes, server peak RSS {peak:.0f} MB")
    assert peak < 300, f"server peak RSS {peak:.0f} MB"
