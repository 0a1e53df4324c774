"""Upload + validation throughput of `POST /v1/files` on loopback.

Starts `python -m service` on a fresh data folder (SQLite, local object store), streams a
generated chat JSONL of `--mb` megabytes as a multipart body (never held whole in memory),
and prints a table: end-to-end MB/s, the server's peak RSS, and for reference the line
checker alone in this process.

    .venv/bin/python bench/upload_throughput.py [--mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.formats import Checker  # noqa: E402

MB = 1_000_000
BOUNDARY = "whetstone-bench-boundary"


def chat_block(target: int = 1 << 20) -> bytes:
    """About `target` bytes of varied, valid chat lines (~600 bytes each)."""
    lines = []
    size = i = 0
    while size < target:
        line = json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are Veloria's archivist. Answer briefly."},
                    {"role": "user", "content": f"Question {i}: what happened in year {1200 + i}? "
                     + "Tell me about the glass bridges of Quessa. " * 3},
                    {"role": "assistant", "content": f"In {1200 + i} the river markets of Quessa "
                     + "moved upstream, and the bridges were rebuilt in glass. " * 4},
                ]
            }
        ).encode() + b"\n"  # fmt: skip
        lines.append(line)
        size += len(line)
        i += 1
    return b"".join(lines)


def dataset(total: int) -> Iterator[bytes]:
    block = chat_block()
    for _ in range(max(1, total // len(block))):
        yield block


def multipart_body(chunks: Iterator[bytes], filename: str = "train.jsonl") -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    yield from chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def checker_only(total: int) -> float:
    checker = Checker()
    start = time.perf_counter()
    size = 0
    for chunk in dataset(total):
        checker.feed(chunk)
        size += len(chunk)
    assert checker.finish().ok
    return size / MB / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    total = args.mb * MB

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
        env.update(WHETSTONE_DATA_DIR=tmp, WHETSTONE_PORT=str(port), WHETSTONE_HOST="127.0.0.1")
        key = subprocess.run(
            [sys.executable, "-m", "service.cli", "keys", "create", "--project", "bench"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/healthz", proc)
            headers = {
                "Authorization": f"Bearer {key}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            }
            rows = []
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                for run in range(1, args.runs + 1):
                    start = time.perf_counter()
                    r = client.post("/v1/files", content=multipart_body(dataset(total)))
                    seconds = time.perf_counter() - start
                    r.raise_for_status()
                    size = r.json()["bytes"]
                    rows.append((f"upload {run}", size, seconds))
                    client.delete(f"/v1/files/{r.json()['id']}")
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=15)

    print(f"POST /v1/files, chat JSONL, loopback, {os.cpu_count()} CPUs")
    print(f"{'run':<16}{'MB':>10}{'seconds':>10}{'MB/s':>10}")
    for name, size, seconds in rows:
        print(f"{name:<16}{size / MB:>10.1f}{seconds:>10.2f}{size / MB / seconds:>10.1f}")
    median = statistics.median(size / MB / seconds for _, size, seconds in rows)
    print(f"{'median':<16}{'':>10}{'':>10}{median:>10.1f}")
    print(f"{'checker only':<16}{args.mb:>10.1f}{'':>10}{checker_only(total):>10.1f}")
    print(f"server peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
