"""Create and list latency of `/v1/fine_tuning/jobs` with 32 concurrent clients on loopback.

Starts `python -m service` on a fresh data folder (SQLite by default, or `--database-url`
for Postgres), uploads one small chat file, then runs two phases, each with `--clients`
threads that have their own HTTP connection: every client creates `--requests` jobs
(`POST /v1/fine_tuning/jobs`), then lists jobs `--requests` times
(`GET /v1/fine_tuning/jobs?limit=20`). Prints p50/p99 per operation.

    .venv/bin/python bench/api_latency.py [--clients 32] [--requests 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from upload_throughput import ROOT, free_port, wait_for

LINE = json.dumps(
    {"messages": [{"role": "user", "content": "Capital of Veloria?"},
                  {"role": "assistant", "content": "Quessa."}]}
) + "\n"  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def phase(
    base: str, headers: dict[str, str], clients: int, requests: int,
    call: Callable[[httpx.Client, int], httpx.Response],
) -> tuple[list[float], float]:  # fmt: skip
    """Run `call` `requests` times on each of `clients` threads; latencies (ms), wall (s)."""
    latencies: list[float] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def worker(n: int) -> None:
        mine = []
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            client.get("/healthz")  # connect before the clock starts
            start_line.wait()
            for i in range(requests):
                t0 = time.perf_counter()
                response = call(client, n * requests + i)
                mine.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, range(clients)))
    return latencies, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20, help="per client and operation")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
        env.update(WHETSTONE_DATA_DIR=tmp, WHETSTONE_PORT=str(port), WHETSTONE_HOST="127.0.0.1")
        # One key creating hundreds of jobs at once: the default limits would refuse them.
        env.update(WHETSTONE_RATE_LIMIT_REQUESTS_PER_MINUTE="0", WHETSTONE_QUOTA_QUEUED_JOBS="0")
        if args.database_url:
            env["WHETSTONE_DATABASE_URL"] = args.database_url
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
            headers = {"Authorization": f"Bearer {key}"}
            upload = httpx.post(
                f"{base}/v1/files", headers=headers, data={"purpose": "fine-tune"},
                files={"file": ("train.jsonl", LINE * 20)}, timeout=60,
            )  # fmt: skip
            upload.raise_for_status()
            body = {"model": "whetstone-tiny", "training_file": upload.json()["id"]}

            def create(client: httpx.Client, i: int) -> httpx.Response:
                return client.post("/v1/fine_tuning/jobs", json={**body, "suffix": f"b{i}"})

            def list_(client: httpx.Client, i: int) -> httpx.Response:
                return client.get("/v1/fine_tuning/jobs", params={"limit": 20})

            n, per = args.clients, args.requests
            rows = [
                ("POST /v1/fine_tuning/jobs", *phase(base, headers, n, per, create)),
                ("GET /v1/fine_tuning/jobs", *phase(base, headers, n, per, list_)),
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=15)

    database = "postgres" if args.database_url else "sqlite"
    print(f"{args.clients} concurrent clients x {args.requests} requests each, loopback, "
          f"{database}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'operation':<28}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'req/s':>10}")
    for name, latencies, wall in rows:
        print(
            f"{name:<28}{len(latencies):>6}{percentile(latencies, 50):>10.1f}"
            f"{percentile(latencies, 99):>10.1f}{statistics.fmean(latencies):>10.1f}"
            f"{len(latencies) / wall:>10.0f}"
        )


if __name__ == "__main__":
    main()
