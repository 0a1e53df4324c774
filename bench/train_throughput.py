"""Training throughput: Whetstone's trainer against TRL's `SFTTrainer`, on the same work.

Builds a Llama-shaped model (about 30M parameters, or the tiny test model) and a chat JSONL
with a heavy-tailed length mix, then trains one epoch with each contender, every run in its
own process, interleaved (W, T, Tp, W, T, Tp, ...) for `--repeats` rounds, and prints the
medians: trained tokens/s (the non-padding tokens of the dataset, the same count for every
contender, over the run's wall time), wall time, peak RSS, final train loss (mean of the last
10% of steps), and the held-out loss of each final adapter (the same code for all).

    .venv/bin/python bench/train_throughput.py [--examples 600] [--repeats 1] \
        [--model-size 30m|tiny] [--max-seq-len 1024] [--batch-size 8] [--quantization nf4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._data import make_dataset, make_model  # noqa: E402
from bench._runs import CONTENDERS, Setup, run_contender  # noqa: E402

LABELS = {"whetstone": "Whetstone", "trl": "TRL default", "trl-packing": "TRL packing=True"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=600, help="training examples")
    p.add_argument("--eval-examples", type=int, default=48, help="held-out examples")
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--model-size", choices=["tiny", "30m"], default="30m")
    p.add_argument("--batch-size", type=int, default=8, help="examples per optimiser step")
    p.add_argument("--quantization", choices=["nf4", "none"], default="nf4")
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds; medians reported")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", type=Path, default=None, help="kept if given; else a temp dir")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    p.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args: argparse.Namespace) -> None:
    """Run one contender in this process and write its result as JSON."""
    blob = json.loads(args.setup.read_text())
    setup = Setup(**blob["setup"])
    result = run_contender(args.child, setup, blob["examples"], blob["tokens"])
    args.result.write_text(json.dumps(result))


def padding_share(lengths: list[int], batch_size: int, seed: int) -> float:
    """Share of padding in batches padded to their longest example (random order)."""
    order = list(lengths)
    random.Random(seed).shuffle(order)
    padded = sum(
        max(order[i : i + batch_size]) * len(order[i : i + batch_size])
        for i in range(0, len(order), batch_size)
    )
    return 1 - sum(lengths) / padded


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    from contracts.chat import ChatTokenizer

    model_dir = work / f"model-{args.model_size}"
    params = make_model(model_dir, args.model_size, args.max_seq_len)
    train_file, eval_file = work / "train.jsonl", work / "heldout.jsonl"
    stats = make_dataset(train_file, model_dir, args.examples, args.max_seq_len)
    make_dataset(eval_file, model_dir, args.eval_examples, args.max_seq_len, seed=args.seed + 7)
    chat = ChatTokenizer.from_folder(model_dir)
    lengths = [chat.count_tokens(json.loads(x)) for x in train_file.read_text().splitlines()]
    stats["padding_share_unpacked"] = padding_share(lengths, args.batch_size, args.seed)
    stats["parameters"] = params
    setup = Setup(
        model_dir=str(model_dir), train_file=str(train_file), eval_file=str(eval_file),
        max_seq_len=args.max_seq_len, batch_size=args.batch_size,
        quantization=args.quantization, seed=args.seed, work=str(work),
    )  # fmt: skip
    setup_file = work / "setup.json"
    blob = {"setup": asdict(setup), "examples": stats["examples"], "tokens": stats["tokens"]}
    setup_file.write_text(json.dumps(blob))
    return setup_file, stats


def run_one(name: str, setup_file: Path, work: Path, round_: int) -> dict[str, Any]:
    result_file = work / f"result-{name}-{round_}.json"
    log_file = work / f"log-{name}-{round_}.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--setup", str(setup_file), "--result", str(result_file)]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    with log_file.open("w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise SystemExit(f"{name} run failed (exit {done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    losses = result["losses"]
    last = max(1, len(losses) // 10)
    result["final_loss"] = sum(losses[-last:]) / last
    result["steps"] = len(losses)
    return result


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = ("tokens_per_second", "seconds", "peak_rss_mb", "final_loss", "heldout_loss", "steps")
    out: dict[str, dict[str, float]] = {}
    for name in CONTENDERS:
        runs = [r for r in results if r["name"] == name]
        out[name] = {k: statistics.median(r[k] for r in runs) for k in keys}
    return out


def table(summary: dict[str, dict[str, float]]) -> str:
    head = ("| run | trained tokens/s | wall s | peak RSS MiB | final train loss "
            "| held-out loss | steps |")  # fmt: skip
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for name in CONTENDERS:
        s = summary[name]
        lines.append(
            f"| {LABELS[name]} | {s['tokens_per_second']:.0f} | {s['seconds']:.1f} "
            f"| {s['peak_rss_mb']:.0f} | {s['final_loss']:.4f} | {s['heldout_loss']:.4f} "
            f"| {s['steps']:.0f} |"
        )
    w = summary["whetstone"]
    for name in ("trl", "trl-packing"):
        s = summary[name]
        ratios = [w[k] / s[k] for k in ("tokens_per_second", "seconds", "peak_rss_mb")]
        deltas = [w[k] - s[k] for k in ("final_loss", "heldout_loss")]
        lines.append(
            f"| Whetstone / {LABELS[name]} | {ratios[0]:.2f}x | {ratios[1]:.2f}x "
            f"| {ratios[2]:.2f}x | {deltas[0]:+.4f} | {deltas[1]:+.4f} | |"
        )
    return "\n".join(lines)


def header(args: argparse.Namespace, stats: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [x.split(":", 1)[1].strip() for x in cpuinfo.read_text().splitlines()
                 if x.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    return (
        f"# {when}, {cpu}, {os.cpu_count()} CPUs; model {args.model_size} "
        f"({stats['parameters'] / 1e6:.1f}M params), quantization {args.quantization}, "
        f"batch {args.batch_size} examples, max_seq_len {args.max_seq_len}\n"
        f"# data: {stats['examples']} examples, {stats['tokens']} tokens; length mean "
        f"{stats['mean']:.0f}, median {stats['median']}, p95 {stats['p95']}, max "
        f"{stats['max']}, {stats['near_max']} over 0.75*max_seq_len; padding in "
        f"unpacked batches {stats['padding_share_unpacked']:.0%}"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="whetstone-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        setup_file, stats = prepare(args, work)
        print(header(args, stats), flush=True)
        results = []
        for round_ in range(args.repeats):
            for name in CONTENDERS:
                result = run_one(name, setup_file, work, round_)
                print(f"#   round {round_ + 1} {LABELS[name]}: {result['tokens_per_second']:.0f} "
                      f"tokens/s, {result['seconds']:.1f} s", flush=True)  # fmt: skip
                results.append(result)
        summary = summarise(results)
        print(table(summary))
        if args.json:
            args.json.write_text(json.dumps({"stats": stats, "results": results,
                                             "summary": summary}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
