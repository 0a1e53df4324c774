"""The training benchmark's tables: medians per contender, Whetstone's ratios."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from bench._runs import CONTENDERS

LABELS = {"whetstone": "Whetstone", "trl": "TRL default", "trl-packing": "TRL packing=True"}
KEYS = ("tokens_per_second", "seconds", "peak_rss_mb", "final_loss", "heldout_loss", "steps")


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Medians of each contender's runs."""
    out: dict[str, dict[str, float]] = {}
    for name in CONTENDERS:
        runs = [r for r in results if r["name"] == name]
        out[name] = {k: statistics.median(_num(r.get(k)) for r in runs) for k in KEYS}
    return out


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


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
            f"| Whetstone / {LABELS[name]} | **{ratios[0]:.2f}x** | {ratios[1]:.2f}x "
            f"| {ratios[2]:.2f}x | {deltas[0]:+.4f} | {deltas[1]:+.4f} | |"
        )
    return "\n".join(lines)


def floor_line(summary: dict[str, dict[str, float]], results: list[dict[str, Any]]) -> str:
    """The floor's median seconds, and what it allows against each contender."""
    floors = [r["seconds"] for r in results if r["name"] == "floor"]
    if not floors:
        return ""
    floor = statistics.median(floors)
    bounds = ", ".join(
        f"{LABELS[name]} {summary[name]['seconds'] / floor:.2f}x" for name in CONTENDERS
    )
    return (
        f"\nfp32 matmul floor of this work (`bench/_floor.py`: the frozen base's forward and "
        f"input-gradient matmuls alone): **{floor:.3g} s**. The most any trainer could be "
        f"faster than each run here (its wall time / the floor): {bounds}."
    )


def memory_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per model: each contender's peak RSS (and wall time), Whetstone's ratios."""
    lines = [
        "| model | Whetstone MiB | TRL default MiB | TRL packing MiB | Whetstone / TRL default "
        "| Whetstone / TRL packing | wall s (W / T / Tp) | final train loss (W / T / Tp) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, s in rows.items():
        w, t, tp = (s[n] for n in CONTENDERS)
        lines.append(
            f"| {model} | {w['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} "
            f"| {tp['peak_rss_mb']:.0f} | **{w['peak_rss_mb'] / t['peak_rss_mb']:.2f}x** "
            f"| **{w['peak_rss_mb'] / tp['peak_rss_mb']:.2f}x** "
            f"| {w['seconds']:.0f} / {t['seconds']:.0f} / {tp['seconds']:.0f} "
            f"| {w['final_loss']:.3f} / {t['final_loss']:.3f} / {tp['final_loss']:.3f} |"
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
    lines = [
        f"# {when}, {cpu}, {os.cpu_count()} CPUs; model {args.model_size} "
        f"({stats['parameters'] / 1e6:.1f}M params), LoRA r16 all linear layers, batch "
        f"{args.batch_size} examples, max_seq_len {args.max_seq_len}, {args.repeats} rounds",
        f"# data: {stats['examples']} examples, {stats['tokens']} tokens; length mean "
        f"{stats['mean']:.0f}, median {stats['median']}, p95 {stats['p95']}, max "
        f"{stats['max']}, {stats['near_max']} over 0.75*max_seq_len; padding in "
        f"unpacked batches {stats['padding_share_unpacked']:.0%}",
    ]
    if "memory" in stats:
        m = stats["memory"]
        lines.append(
            f"# memory runs: {m['examples']} examples, {m['tokens']} tokens, max_seq_len "
            f"{args.memory_max_seq_len}, batch {args.memory_batch_size}; Gemma-3-shaped "
            f"{stats['parameters_gemma3'] / 1e6:.1f}M params, Qwen-3-shaped "
            f"{stats['parameters_qwen3'] / 1e6:.1f}M params"
        )
    return "\n".join(lines)
