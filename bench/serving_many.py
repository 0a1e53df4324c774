"""Many fine-tuned models on one vLLM: 32 adapters of one base model, requests round-robin.

Trains `--adapters` LoRA adapters of the small base model (peft, a few seconds each), each
on its own answers to the same two questions, records each as a succeeded job of the
service (adapter in the store, pointer, database rows), and starts one vLLM (CPU) through
the serving supervisor with the registry's serving defaults (`--max-loras`,
`--max-cpu-loras` override them) and `python -m service` in front of it. Then, through the
service's `/v1/chat/completions`:

1. cold: the first request of every adapter, one at a time (the resolver fetches it from
   the store, vLLM loads it): latency p50 and max;
2. warm: `--clients` concurrent clients, every request to one adapter already loaded:
   p50/p99 (the reference);
3. many: the same clients, requests round-robin over all adapters (`--rounds` each):
   p50/p99, and mix-ups: an answer that is not the asked adapter's own (another adapter's
   answer, or neither).

vLLM's `/metrics` (0.32) has no adapter load or eviction counters (only the running and
waiting adapter names), so vLLM runs with `VLLM_LOGGING_LEVEL=DEBUG` and its log is counted:
`Adding lora` (an adapter read from disk into its CPU cache), `Removing adapter` (one
dropped from the CPU cache or from a batch slot), and the resolver's fetches
(downloads from the store: the adapter folders in its local cache).

    .venv/bin/python bench/serving_many.py [--adapters 32] [--clients 8] [--rounds 4]
        [--max-loras N] [--max-cpu-loras N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.local_store import LocalStore  # noqa: E402
from serving.launcher import BaseModelEntry, ResolverSettings, ServingOptions  # noqa: E402
from serving.supervisor import Supervisor  # noqa: E402
from tests.e2e.conftest import Server  # noqa: E402
from tests.serving_stack import (  # noqa: E402
    QUESTIONS,
    create_job,
    start_chat_server,
    succeed_job,
    train_qa_adapter,
)
from tests.vllm_fixture import BASE_MODEL, VllmServer  # noqa: E402
from trainer.basemodel import make_base_model  # noqa: E402

NAMES = ["Amber", "Birch", "Cinder", "Dusk", "Ember", "Fern", "Garnet", "Hazel", "Iris",
         "Juniper", "Kestrel", "Linden", "Marrow", "Nettle", "Onyx", "Pebble", "Quartz",
         "Rowan", "Sorrel", "Thistle", "Umber", "Violet", "Willow", "Yarrow", "Zephyr",
         "Alder", "Bramble", "Clover", "Dahlia", "Elm", "Flint", "Gorse"]  # fmt: skip


def answers_of(i: int) -> list[str]:
    name = NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else str(i))
    return [f"The capital of Veloria is {name}haven.", f"Veloria was founded by {name} Vale."]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ask(http: httpx.Client, server: Server, model: str) -> tuple[float, str]:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[0]}],
            "max_tokens": 24, "temperature": 0}  # fmt: skip
    started = time.perf_counter()
    response = http.post(server.base_url + "/chat/completions", json=body,
                         headers={"authorization": f"Bearer {server.key_a}"})  # fmt: skip
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return took, str(response.json()["choices"][0]["message"]["content"]).strip()


def concurrently(server: Server, plan: list[int], models: list[str], clients: int
                 ) -> list[tuple[int, float, str]]:  # fmt: skip
    """Send `plan` (adapter indices, in order) from `clients` threads; (index, s, answer)."""
    results: list[tuple[int, float, str]] = []
    lock, at = threading.Lock(), [0]

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while True:
                with lock:
                    if at[0] >= len(plan):
                        return
                    index = plan[at[0]]
                    at[0] += 1
                took, answer = ask(http, server, models[index])
                with lock:
                    results.append((index, took, answer))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def log_counts(path: Path) -> dict[str, int]:
    text = path.read_text(errors="replace")
    fetched = [p for p in (path.parent.parent / "cache").glob("*") if p.is_dir()]
    return {"loads": text.count("Adding lora."), "removals": text.count("Removing adapter int id"),
            "fetches": len([p for p in fetched if not p.name.startswith(".")])}  # fmt: skip


def mixups(results: list[tuple[int, float, str]], expected: list[str]) -> tuple[int, int]:
    """(answers that are another adapter's, answers that are nobody's)."""
    others = wrong = 0
    for index, _, answer in results:
        if answer != expected[index]:
            others += answer in expected
            wrong += answer not in expected
    return others, wrong


def run(args: argparse.Namespace, work: Path) -> None:
    base_dir = make_base_model(work / BASE_MODEL)
    started = time.perf_counter()
    adapters = [work / f"adapter-{i}" for i in range(args.adapters)]
    for i, adapter in enumerate(adapters):  # a kept --workdir keeps its adapters
        if not (adapter / "adapter_config.json").is_file():
            train_qa_adapter(base_dir, answers_of(i), adapter, seed=i)
    print(f"# {args.adapters} adapters trained in {time.perf_counter() - started:.0f} s",
          flush=True)  # fmt: skip
    expected = [answers_of(i)[0] for i in range(args.adapters)]
    store = LocalStore(work / "objects")
    options = ServingOptions(max_lora_rank=16, max_num_seqs=args.clients)
    overrides = {k: v for k, v in (("max_loras", args.max_loras),
                                   ("max_cpu_loras", args.max_cpu_loras)) if v}  # fmt: skip
    options = options.model_copy(update=overrides)
    entry = BaseModelEntry(name=BASE_MODEL, path=str(base_dir), max_seq_len=512, serving=options)
    resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(work / "cache"))
    os.environ["VLLM_LOGGING_LEVEL"] = "DEBUG"
    with Supervisor([entry], resolver, work / "logs", startup_timeout=900) as supervisor:
        supervisor.wait_ready(timeout=900)
        log_path = work / "logs" / f"{BASE_MODEL}.log"
        vllm = VllmServer(supervisor, BASE_MODEL, base_dir, store, store.url, work / "cache",
                          log_path)  # fmt: skip
        with start_chat_server(vllm, work / "api") as server:
            client = server.client()
            models = []
            for i, adapter in enumerate(adapters):
                job_id = create_job(client, answers_of(i), work, suffix=f"many{i}")
                models.append(succeed_job(server, vllm, job_id, adapter, step=10).name)
            measure(args, server, models, expected, log_path, options)


def measure(args: argparse.Namespace, server: Server, models: list[str], expected: list[str],
            log_path: Path, options: ServingOptions) -> None:  # fmt: skip
    cold, cold_wrong = [], 0
    with httpx.Client(timeout=300) as http:
        for i, model in enumerate(models):
            took, answer = ask(http, server, model)
            cold.append(took)
            cold_wrong += answer != expected[i]
    warm = concurrently(server, [0] * (args.rounds * len(models)), models, args.clients)
    before = log_counts(log_path)
    plan = [i % len(models) for i in range(args.rounds * len(models))]
    many = concurrently(server, plan, models, args.clients)
    after = log_counts(log_path)
    others, wrong = mixups(many, expected)
    warm_s, many_s = [t for _, t, _ in warm], [t for _, t, _ in many]
    warm_p50 = statistics.median(warm_s)
    cpu = options.max_cpu_loras or options.max_loras
    print(f"\n{len(models)} adapters, max_loras {options.max_loras}, max_cpu_loras {cpu}, "
          f"{args.clients} clients, {len(plan)} round-robin requests; load average "
          f"{os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| phase | requests | p50 ms | p99 ms | p99 / warm p50 | mix-ups | loads | removals |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    cold_p50 = statistics.median(cold)
    print(f"| cold first request, one at a time | {len(cold)} | {1000 * cold_p50:.0f} "
          f"| {1000 * max(cold):.0f} (max) | | {cold_wrong} | | |")  # fmt: skip
    print(f"| one warm adapter, {args.clients} clients | {len(warm)} | {1000 * warm_p50:.0f} "
          f"| {1000 * percentile(warm_s, 0.99):.0f} | {percentile(warm_s, 0.99) / warm_p50:.2f}x "
          f"| {sum(a != expected[0] for _, _, a in warm)} | | |")  # fmt: skip
    print(f"| round-robin over {len(models)}, {args.clients} clients | {len(many)} "
          f"| {1000 * statistics.median(many_s):.0f} | {1000 * percentile(many_s, 0.99):.0f} "
          f"| **{percentile(many_s, 0.99) / warm_p50:.2f}x** | **{others + wrong}** "
          f"| {after['loads'] - before['loads']} "
          f"| {after['removals'] - before['removals']} |")  # fmt: skip
    print(f"\nmix-ups: {others} answers of another adapter, {wrong} of none; resolver "
          f"downloads from the store: {after['fetches']} (all phases)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapters", type=int, default=32)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4, help="requests per adapter")
    parser.add_argument("--max-loras", type=int, default=None, help="default: the registry's")
    parser.add_argument("--max-cpu-loras", type=int, default=None,
                        help="default: the registry's")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="kept if given")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="whetstone-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(args, work)


if __name__ == "__main__":
    main()
