"""Chat latency through the Whetstone API versus straight to vLLM, and warm-start time.

Starts one vLLM (CPU) for the small base model through the serving supervisor, and
`python -m service` (SQLite) pointed at it (a second one, which checks every request in its
database, is only measured for its CPU per request). A fine-tuned model is recorded as a
succeeded job (adapter in the store, pointer, database rows). Then, for the same requests,
alternating between the two paths so that both see the same machine load:

- non-streamed completions (`--tokens` tokens each, `ignore_eos`): latency p50/p99 and
  tokens/s, for the base model and for the fine-tuned model;
- streamed completions: time to the first content token, p50/p99;
- warm start: a new model's job succeeds, the service's warm start asks vLLM to load its
  adapter (`/v1/load_lora_adapter` through the supervisor), then the first token of the
  model streamed through the API; the time from the start of the load to that token.

    .venv/bin/python bench/serving_latency.py [--requests 100] [--tokens 16] [--warm 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.local_store import LocalStore  # noqa: E402
from service.models.vllms import VllmRoutes  # noqa: E402
from service.models.warm_start import AdapterControl  # noqa: E402
from serving.launcher import BaseModelEntry, ResolverSettings, ServingOptions  # noqa: E402
from serving.supervisor import Supervisor  # noqa: E402
from tests.e2e.conftest import Server  # noqa: E402
from tests.serving_stack import create_job, start_chat_server, succeed_job  # noqa: E402
from tests.vllm_fixture import BASE_MODEL, VllmServer, make_lora_adapter  # noqa: E402
from trainer.basemodel import make_base_model  # noqa: E402

PROMPT = [{"role": "user", "content": "Tell me about the glass bridges of Quessa."}]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def whole(http: httpx.Client, url: str, headers: dict[str, str], model: str, tokens: int) -> float:
    """Seconds for one non-streamed completion of exactly `tokens` tokens."""
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "temperature": 0,
            "ignore_eos": True}  # fmt: skip
    started = time.perf_counter()
    answer = http.post(url, json=body, headers=headers)
    took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == tokens
    return took


def first_token(
    http: httpx.Client, url: str, headers: dict[str, str], model: str, tokens: int = 8
) -> float:
    """Seconds from sending a streamed completion to its first content token."""
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "temperature": 0,
            "ignore_eos": True, "stream": True}  # fmt: skip
    started = time.perf_counter()
    took = None
    with http.stream("POST", url, json=body, headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        for line in answer.iter_lines():
            if took is None and '"content":"' in line and '"content":""' not in line:
                took = time.perf_counter() - started
    assert took is not None
    return took


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api_cpu_per_request(
    http: httpx.Client, server: Server, model: str, tokens: int, n: int = 200
) -> float:
    """Seconds of the API process's CPU per non-streamed request (whatever the load)."""
    url, auth = server.base_url + "/chat/completions", {"authorization": f"Bearer {server.key_a}"}
    before = cpu_seconds(server.proc.pid)
    for _ in range(n):
        whole(http, url, auth, model, tokens)
    return (cpu_seconds(server.proc.pid) - before) / n


def compare(
    measure: Callable[[str, dict[str, str]], float], direct: str, api: str, key: str, n: int
) -> tuple[list[float], list[float]]:
    """`n` measurements of each path, alternating (after a few warm-up rounds); the i-th of
    each list were taken one right after the other."""
    auth = {"authorization": f"Bearer {key}"}
    for _ in range(3):
        measure(direct, {}), measure(api, auth)
    a, b = [], []
    for i in range(n):
        if i % 2:
            a.append(measure(direct, {}))
            b.append(measure(api, auth))
        else:
            b.append(measure(api, auth))
            a.append(measure(direct, {}))
    return a, b


def row(name: str, direct: list[float], api: list[float], tokens: int | None) -> str:
    p50d, p50a = statistics.median(direct), statistics.median(api)
    p99d, p99a = percentile(direct, 0.99), percentile(api, 0.99)
    # The same request both ways, one right after the other: the median of these
    # differences is less at the mercy of the machine's load than the difference of medians.
    paired = statistics.median(b - a for a, b in zip(direct, api, strict=True))
    cells = [f"{name:<34}", f"{1000 * p50d:8.1f}", f"{1000 * p50a:8.1f}",
             f"{1000 * (p50a - p50d):+7.2f} ({100 * (p50a / p50d - 1):+5.1f}%)",
             f"{1000 * paired:+7.2f}", f"{1000 * p99d:8.1f}", f"{1000 * p99a:8.1f}"]  # fmt: skip
    if tokens:
        cells += [f"{tokens / p50d:10.0f}", f"{tokens / p50a:9.0f}"]
    return " ".join(cells)


def warm_starts(
    server: Server, vllm: VllmServer, work: Path, count: int
) -> list[tuple[float, float]]:
    """(load seconds, load-to-first-token seconds) for `count` newly succeeded models."""
    control = AdapterControl(VllmRoutes({}, vllm.supervisor))
    client = server.client()
    url = server.base_url + "/chat/completions"
    auth = {"authorization": f"Bearer {server.key_a}"}
    results = []
    with httpx.Client(timeout=120) as http:
        for i in range(count):
            job_id = create_job(client, ["a", "b"], work, suffix=f"warm{i}")
            adapter = make_lora_adapter(vllm.base_model_dir, work / f"warm-{i}", seed=1000 + i)
            model = succeed_job(server, vllm, job_id, adapter, step=10)
            started = time.perf_counter()
            assert control.warm_start(model.name, BASE_MODEL)
            loaded = time.perf_counter()
            first_token(http, url, auth, model.name, tokens=1)
            results.append((loaded - started, time.perf_counter() - started))
    control.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="measurements per path")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per completion")
    parser.add_argument("--warm", type=int, default=3, help="warm starts to time")
    parser.add_argument(
        "--vllm-cpus",
        default="0",
        help="CPUs for vLLM's compute threads (VLLM_CPU_OMP_THREADS_BIND); the others are "
        "left to the API, as when vLLM runs on a GPU or a machine of its own ('' = all)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="whetstone-bench-") as tmp:
        work = Path(tmp)
        base_dir = make_base_model(work / BASE_MODEL)
        store = LocalStore(work / "objects")
        entry = BaseModelEntry(
            name=BASE_MODEL, path=str(base_dir), max_seq_len=512,
            serving=ServingOptions(max_loras=2, max_lora_rank=16, max_num_seqs=8,
                                   cpu_threads_bind=args.vllm_cpus or None),
        )  # fmt: skip
        resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(work / "cache"))
        with Supervisor([entry], resolver, work / "logs", startup_timeout=600) as supervisor:
            supervisor.wait_ready(timeout=600)
            up = supervisor.status(BASE_MODEL).startup_seconds or 0.0
            vllm = VllmServer(supervisor, BASE_MODEL, base_dir, store, store.url,
                              work / "cache", work / "logs" / f"{BASE_MODEL}.log")  # fmt: skip
            no_cache = {"WHETSTONE_CHAT_ACCESS_CACHE_SECONDS": "0"}
            with (
                start_chat_server(vllm, work / "api") as server,
                start_chat_server(vllm, work / "api-no-cache", no_cache) as uncached,
            ):
                if args.vllm_cpus:  # the APIs and this client on the CPUs vLLM leaves free
                    free = set(range(os.cpu_count() or 1)) - _cpus(args.vllm_cpus)
                    for pid in (server.proc.pid, uncached.proc.pid, os.getpid()):
                        os.sched_setaffinity(pid, free or {0})
                run(args, server, uncached, vllm, work, up)


def _cpus(spec: str) -> set[int]:
    """`0-2,5` -> {0, 1, 2, 5} (the format of VLLM_CPU_OMP_THREADS_BIND)."""
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def run(
    args: argparse.Namespace,
    server: Server,
    uncached: Server,
    vllm: VllmServer,
    work: Path,
    up: float,
) -> None:
    """The measurements through `server`; `uncached` (an API that checks every request in
    its database) only for its CPU per request."""
    job_id = create_job(server.client(), ["a", "b"], work, suffix="bench")
    adapter = make_lora_adapter(vllm.base_model_dir, work / "adapter", seed=7)
    tuned = succeed_job(server, vllm, job_id, adapter, step=10).name
    direct = "/v1/chat/completions"  # over vLLM's Unix socket, as the API relays
    api = server.base_url + "/chat/completions"
    n, tokens = args.requests, args.tokens
    lines = []
    with httpx.Client(timeout=120) as http, vllm.http() as to_vllm:

        def on(url: str) -> httpx.Client:
            return to_vllm if url == direct else http

        for label, model in (("base model", BASE_MODEL), ("fine-tuned model (LoRA)", tuned)):
            a, b = compare(lambda u, h, m=model: whole(on(u), u, h, m, tokens), direct, api,
                           server.key_a, n)  # fmt: skip
            lines.append(row(f"{label}, {tokens} tokens", a, b, tokens))
            a, b = compare(lambda u, h, m=model: first_token(on(u), u, h, m), direct, api,
                           server.key_a, n)  # fmt: skip
            lines.append(row(f"{label}, first token (stream)", a, b, None))
        cpu = api_cpu_per_request(http, server, BASE_MODEL, tokens)
        cpu_uncached = api_cpu_per_request(http, uncached, BASE_MODEL, tokens)
    warm = warm_starts(server, vllm, work, args.warm)

    cpus = args.vllm_cpus or "all"
    print(f"\nvLLM (CPU, compute on CPUs {cpus}) up in {up:.1f}s; {n} requests per path, "
          "alternating; times in ms\n")  # fmt: skip
    print(f"{'':<34} {'p50 vLLM':>8} {'p50 API':>8} {'added at p50':>16} {'paired':>7} "
          f"{'p99 vLLM':>8} {'p99 API':>8} {'tok/s vLLM':>10} {'tok/s API':>9}")  # fmt: skip
    for line in lines:
        print(line)
    print(f"\nAPI process CPU per proxied request: {1000 * cpu:.2f} ms; "
          f"{1000 * cpu_uncached:.2f} ms when each request is checked in the database "
          "(WHETSTONE_CHAT_ACCESS_CACHE_SECONDS=0). Added latency beyond this is waiting for "
          f"a CPU: this machine's load average was {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\nwarm start (job success -> load_lora_adapter -> first token through the API):")
    for i, (load, first) in enumerate(warm):
        print(f"  model {i + 1}: load_lora_adapter {1000 * load:7.1f} ms, "
              f"first token {1000 * first:7.1f} ms after the start of the load")  # fmt: skip
    print(f"  median: {1000 * statistics.median(f for _, f in warm):.1f} ms (target < 2000 ms)")


if __name__ == "__main__":
    main()
