"""Training throughput and memory: Whetstone's trainer against TRL's `SFTTrainer`, same work.

One command, every table the README quotes:

- **LoRA fp32** and **QLoRA NF4** on a Llama-shaped model (about 30M parameters, the built-in
  tokenizer) and a chat JSONL with a heavy-tailed length mix: one epoch with each contender
  (Whetstone, TRL default, TRL `packing=True`), every run in its own process, interleaved
  (W, T, Tp, W, T, Tp, ...) for `--repeats` rounds; medians of trained tokens/s (the
  dataset's real tokens over the run's wall time), wall time, peak RSS, final train loss
  (mean of the last 10% of steps) and the held-out loss of each final adapter (the same code
  for all), then Whetstone's ratios; and the fp32 matmul floor of the same work
  (`bench/_floor.py`), which bounds how much faster than each contender any trainer can be.
- **Memory**: peak RSS of one LoRA run of each contender on a Gemma-3-shaped (262k
  vocabulary) and a Qwen-3-shaped (152k) tiny model (`bench/_shapes.py`), on the first
  `--memory-examples` examples of the same kind of data, and Whetstone's ratios.

    .venv/bin/python bench/train_throughput.py                # everything (see README)
    .venv/bin/python bench/train_throughput.py --quick        # a small run of the same
    .venv/bin/python bench/train_throughput.py --sections lora --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._data import make_dataset, make_model  # noqa: E402
from bench._floor import floor_seconds  # noqa: E402
from bench._runs import CONTENDERS, Setup, run_contender  # noqa: E402
from bench._shapes import LABELS as SHAPE_LABELS  # noqa: E402
from bench._shapes import make_shaped_model  # noqa: E402
from bench._tables import floor_line, header, memory_table, summarise, table  # noqa: E402

SECTIONS = ("lora", "qlora", "memory")
TITLES = {"lora": "LoRA fp32", "qlora": "QLoRA NF4"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated, of {', '.join(SECTIONS)}")  # fmt: skip
    quick = "a small run: tiny model, 48 examples, max length 256, 1 round"
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--examples", type=int, default=240, help="training examples")
    p.add_argument("--eval-examples", type=int, default=48, help="held-out examples")
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--model-size", choices=["tiny", "30m"], default="30m")
    p.add_argument("--batch-size", type=int, default=8, help="examples per optimiser step")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians reported")
    p.add_argument("--memory-examples", type=int, default=32, help="examples of a memory run")
    p.add_argument("--memory-max-seq-len", type=int, default=512)
    p.add_argument("--memory-batch-size", type=int, default=4,
                   help="examples per step of a memory run (TRL default's logits: "
                   "batch x length x vocabulary x 4 bytes, several copies)")  # fmt: skip
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", type=Path, default=None, help="kept if given; else a temp dir")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    p.add_argument("--child", choices=(*CONTENDERS, "floor"), help=argparse.SUPPRESS)
    p.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # other defaults; flags still win
        p.set_defaults(model_size="tiny", examples=48, eval_examples=8, max_seq_len=256,
                       repeats=1, memory_examples=16, memory_max_seq_len=256)  # fmt: skip
    args = p.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    if unknown := set(args.sections) - set(SECTIONS):
        p.error(f"unknown sections {sorted(unknown)}")
    return args


def child(args: argparse.Namespace) -> None:
    """Run one contender in this process and write its result as JSON."""
    blob = json.loads(args.setup.read_text())
    setup = Setup(**blob["setup"])
    if args.child == "floor":
        seconds = floor_seconds(
            setup.model_dir, setup.train_file, setup.max_seq_len, setup.batch_size
        )
        args.result.write_text(json.dumps({"name": "floor", "seconds": seconds}))
        return
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


def write_setup(work: Path, name: str, setup: Setup, stats: dict[str, Any]) -> Path:
    path = work / f"setup-{name}.json"
    blob = {"setup": asdict(setup), "examples": stats["examples"], "tokens": stats["tokens"]}
    path.write_text(json.dumps(blob))
    return path


def prepare(args: argparse.Namespace, work: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Model folders, data files and one setup file per section (and memory model)."""
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
    base = Setup(
        model_dir=str(model_dir), train_file=str(train_file), eval_file=str(eval_file),
        max_seq_len=args.max_seq_len, batch_size=args.batch_size,
        quantization="none", seed=args.seed, work=str(work),
    )  # fmt: skip
    setups: dict[str, Path] = {}
    for section, quantization in (("lora", "none"), ("qlora", "nf4")):
        if section in args.sections:
            setup = replace(base, quantization=quantization, work=str(work / section))
            setups[section] = write_setup(work, section, setup, stats)
    if "memory" in args.sections:
        memory_file = work / "train-memory.jsonl"
        memory_stats = make_dataset(
            memory_file, model_dir, args.memory_examples, args.memory_max_seq_len
        )
        stats["memory"] = memory_stats
        for family in ("gemma3", "qwen3"):
            folder = work / f"model-{family}"
            stats[f"parameters_{family}"] = make_shaped_model(
                folder, family, args.memory_max_seq_len
            )
            setup = replace(
                base, model_dir=str(folder), train_file=str(memory_file), eval_file="",
                max_seq_len=args.memory_max_seq_len, batch_size=args.memory_batch_size,
                work=str(work / family),
            )  # fmt: skip
            setups[family] = write_setup(work, family, setup, memory_stats)
    return setups, stats


def run_one(name: str, setup_file: Path, work: Path, tag: str) -> dict[str, Any]:
    result_file = work / f"result-{tag}-{name}.json"
    log_file = work / f"log-{tag}-{name}.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--setup", str(setup_file), "--result", str(result_file)]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    with log_file.open("w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise SystemExit(f"{name} run failed (exit {done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    if name == "floor":
        return result
    losses = result["losses"]
    last = max(1, len(losses) // 10)
    result["final_loss"] = sum(losses[-last:]) / last
    result["steps"] = len(losses)
    return result


def run_section(key: str, setup_file: Path, work: Path, rounds: int) -> list[dict[str, Any]]:
    results = []
    for round_ in range(rounds):
        for name in CONTENDERS:
            result = run_one(name, setup_file, work, f"{key}-{round_}")
            print(f"#   {key} round {round_ + 1} {name}: {result['tokens_per_second']:.0f} "
                  f"tokens/s, {result['seconds']:.1f} s, peak RSS "
                  f"{result['peak_rss_mb']:.0f} MiB", flush=True)  # fmt: skip
            results.append({**result, "section": key})
        if key in TITLES:  # the training sections: the floor of the same work, each round
            floor = run_one("floor", setup_file, work, f"{key}-{round_}")
            print(f"#   {key} round {round_ + 1} floor: {floor['seconds']:.1f} s", flush=True)
            results.append({**floor, "section": key})
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whetstone-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        setups, stats = prepare(args, work)
        print(header(args, stats), flush=True)
        results: list[dict[str, Any]] = []
        out: list[str] = []
        for section in ("lora", "qlora"):
            if section in setups:
                section_results = run_section(section, setups[section], work, args.repeats)
                results += section_results
                summary = summarise(section_results)
                out.append(f"\n**{TITLES[section]}**\n\n{table(summary)}")
                out.append(floor_line(summary, section_results))
        if "memory" in args.sections:
            memory = {f: run_section(f, setups[f], work, 1) for f in ("gemma3", "qwen3")}
            results += [r for rs in memory.values() for r in rs]
            rows = {SHAPE_LABELS[f]: summarise(rs) for f, rs in memory.items()}
            out.append(f"\n**Memory** (LoRA fp32, peak RSS)\n\n{memory_table(rows)}")
        print("\n".join(out))
        print(f"\n# total {time.perf_counter() - began:.0f} s")
        if args.json:
            args.json.write_text(json.dumps({"stats": stats, "results": results}, indent=2))


if __name__ == "__main__":
    main()
