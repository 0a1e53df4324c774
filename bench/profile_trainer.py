"""Where the trainer's time goes: one supervised job under cProfile, summed by phase.

Builds the training benchmark's model and data (`bench/_data.py`: the ~30M Llama-shaped
model, heavy-tailed chat examples), runs `trainer.loop.train` with its real HTTP progress
channel against a local stand-in of the service (every report and heartbeat a real POST),
and prints a markdown table of the wall time per phase (setup, forward, loss, backward,
optimiser, reports, checkpoint, finish) from the profile's cumulative times. Then measures
the per-step costs the job pays besides training: a report, a heartbeat, the chunked loss
against plain logits, the outliers' bookkeeping and the held-out lines' skip.

    .venv/bin/python bench/profile_trainer.py [--examples 240] [--quantization none|nf4]
        [--model-size 30m|tiny] [--max-seq-len 1024] [--heartbeat-seconds 30] [--top 0]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._data import make_dataset, make_model  # noqa: E402

# (phase, file suffix, function): cumulative time of that function in the profile.
PHASES = [
    ("setup: read and tokenize the data", "trainer/data.py", "load_numbered_examples"),
    ("setup: load the model, LoRA, head check", "trainer/loop.py", "load_model_or_fail"),
    ("steps (all)", "trainer/loop.py", "train_step"),
    ("  collate micro-batches", "trainer/supervised.py", "batches_of"),
    ("  forward: decoder", "trainer/model.py", "_decode"),
    ("  forward: output layer + loss (chunked)", "trainer/model.py", "chunked_losses"),
    ("  backward", "torch/_tensor.py", "backward"),
    ("  backward (on the cores: autograd.grad)", "torch/autograd/__init__.py", "grad"),
    ("  outliers: split the step's loss by example", "trainer/outliers.py", "split_means"),
    ("  clip + optimiser step", "torch/optim/optimizer.py", "wrapper"),
    ("metrics and reports (record_step)", "trainer/loop.py", "record_step"),
    ("checkpoints", "trainer/loop.py", "checkpoint"),
    ("finish (adapter, metrics CSV, outliers)", "trainer/loop.py", "finish"),
    ("  outliers (final_losses)", "trainer/loop.py", "final_losses"),
    ("reports sent (HttpChannel.send, main thread)", "trainer/progress.py", "send"),
]


class _Service(BaseHTTPRequestHandler):
    """The service's progress endpoint, as far as the trainer sees it."""

    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Service.received.append(body["type"])
        reply = b'{"action": "continue"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=240)
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--model-size", choices=["tiny", "30m"], default="30m")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--quantization", choices=["none", "nf4"], default="none")
    p.add_argument("--heartbeat-seconds", type=float, default=30.0)
    p.add_argument("--top", type=int, default=0, help="also print the top N functions")
    return p.parse_args(argv)


def spec_for(args: argparse.Namespace, model_dir: Path, train_file: Path, out: Path) -> Any:
    from contracts.spec import JobSpec

    return JobSpec.model_validate({
        "job_id": "ftjob-profile",
        "base_model": {"name": "bench", "path": str(model_dir), "max_seq_len": args.max_seq_len},
        "training_file": train_file.resolve().as_uri(),
        "method": {"type": "supervised", "supervised": {
            "n_epochs": 1, "batch_size": args.batch_size, "learning_rate_multiplier": 1.0}},
        "quantization": args.quantization, "seed": 42,
        "output": out.resolve().as_uri() + "/", "checkpoint_every_steps": 10**9,
    })  # fmt: skip


def phase_table(stats: pstats.Stats, total: float) -> str:
    table: dict[tuple[str, str], float] = {}
    for (file, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for _phase, suffix, function in PHASES:
            if name == function and file.endswith(suffix):
                table[(suffix, function)] = table.get((suffix, function), 0.0) + row[3]
    lines = ["| phase | seconds | share |", "|---|---:|---:|"]
    for phase, suffix, function in PHASES:
        seconds = table.get((suffix, function), 0.0)
        lines.append(f"| {phase} | {seconds:.2f} | {seconds / total:.1%} |")
    lines.append(f"| whole job (train) | {total:.2f} | 100% |")
    return "\n".join(lines)


def chunked_vs_plain(model_dir: Path, train_file: Path, args: argparse.Namespace) -> str:
    """ms per forward+backward of one step's batches: the chunked loss against plain logits."""
    import torch
    import torch.nn.functional as F

    from contracts.chat import ChatTokenizer
    from trainer.data import IGNORE, micro_batches
    from trainer.model import _decode, load_model, loss_sums, output_head

    chat = ChatTokenizer.from_folder(model_dir)
    lines = train_file.read_text().splitlines()[: args.batch_size * 3]
    examples = [chat.encode(json.loads(x)) for x in lines]
    spec = spec_for(args, model_dir, train_file, Path(tempfile.mkdtemp()))
    model = load_model(spec, torch.device("cpu"))
    batches = micro_batches(examples, list(range(len(examples))), args.max_seq_len, 0,
                            spec.micro_batch_tokens, packed=False)  # fmt: skip

    def plain(batch: Any) -> torch.Tensor:
        hidden = _decode(model, batch)
        logits = output_head(model.get_base_model())(hidden)
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(),
                               ignore_index=IGNORE, reduction="sum")  # fmt: skip

    def timed(loss_of: Any) -> float:
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            for batch in batches:
                loss_of(batch).backward()
            best = min(best, time.perf_counter() - started)
            model.zero_grad(set_to_none=True)
        return best * 1000 / 3  # per step of batch_size examples

    chunked = timed(lambda b: loss_sums(model, b).loss)
    full = timed(plain)
    return (f"chunked loss {chunked:.0f} ms per step, plain logits over every position "
            f"{full:.0f} ms per step ({chunked / full - 1:+.0%})")  # fmt: skip


def report_costs(url: str, train_file: Path, model_dir: Path, max_seq_len: int) -> list[str]:
    from contracts.chat import ChatTokenizer
    from contracts.messages import Heartbeat, Log
    from trainer.data import load_numbered_examples
    from trainer.progress import HttpChannel

    channel = HttpChannel(url, "token")
    out = []
    for message in (Heartbeat(step=1), Log(level="info", message="x" * 80)):
        started = time.perf_counter()
        for _ in range(50):
            channel.send(message)
        ms = (time.perf_counter() - started) * 1000 / 50
        out.append(f"one {message.type} report over HTTP: {ms:.2f} ms")
    chat = ChatTokenizer.from_folder(model_dir)
    uri = train_file.resolve().as_uri()
    times = {}
    for name, skip in (("none", frozenset()), ("10%", frozenset(range(1, 10**6, 10)))):
        started = time.perf_counter()
        load_numbered_examples(uri, chat, max_seq_len, "training_file", None, skip_lines=skip)
        times[name] = time.perf_counter() - started
    out.append(f"reading the training file: {times['none'] * 1000:.0f} ms; with every 10th "
               f"line held out {times['10%'] * 1000:.0f} ms")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    from trainer.loop import train
    from trainer.progress import HttpChannel, Progress

    with tempfile.TemporaryDirectory(prefix="whetstone-profile-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        make_model(model_dir, args.model_size, args.max_seq_len)
        train_file = work / "train.jsonl"
        make_dataset(train_file, model_dir, args.examples, args.max_seq_len)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/progress"
        spec = spec_for(args, model_dir, train_file, work / "out")
        progress = Progress(HttpChannel(url, "token"), heartbeat_seconds=args.heartbeat_seconds)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        result = train(spec, progress)
        profiler.disable()
        total = time.perf_counter() - started
        assert result.status == "succeeded", result.status
        stats = pstats.Stats(profiler)
        print(f"# {args.examples} examples, model {args.model_size}, quantization "
              f"{args.quantization}, max_seq_len {args.max_seq_len}, batch {args.batch_size}, "
              f"{result.step} steps, {torch.get_num_threads()} torch threads; reports "
              f"received: {len(_Service.received)} ({_Service.received.count('heartbeat')} "
              f"heartbeats every {args.heartbeat_seconds:g} s)")  # fmt: skip
        print(phase_table(stats, total))
        for line in report_costs(url, train_file, model_dir, args.max_seq_len):
            print(f"- {line}")
        print(f"- {chunked_vs_plain(model_dir, train_file, args)}")
        server.shutdown()
        if args.top:
            stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
