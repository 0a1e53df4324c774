"""GPU check: QLoRA on a Llama-3.2-1B and a Llama-3.1-8B shaped model, then GPU vLLM.

On one CUDA machine, in about 5 to 8 minutes on an H100 or H200: builds random-weight models
of the real shapes (`testing.families.make_family_model("llama3", ...)`: Llama-3 tokenizer
and chat template, vocabulary 128256; 1B: hidden 2048, 16 layers, tied embeddings; 8B:
hidden 4096, 32 layers), writes a chat JSONL into a local object store, and runs the real
trainer (`trainer.loop.train`: NF4 with bf16 compute, gradient checkpointing, examples
packed into 4096-token rows) for a few steps of each, every model in its own process. Then
it serves the 1B adapter with GPU vLLM (the command line of `serving.launcher.vllm_args`),
loads the adapter as the supervisor does (`/v1/load_lora_adapter`) and times the first
token of a streamed chat completion, base and adapter. It prints one markdown table:
tokens/s, peak GPU memory, the loss at the first and the last step (it must fall), vLLM's
start-up and first-token times.

Needs torch, transformers, peft and accelerate, and for QLoRA and serving `bitsandbytes`
and `vllm`: `pip install bitsandbytes vllm` first, or `bench/gpu_check.sh WHEEL_DIR`, which
installs them from a folder of wheels (no internet needed) and then runs this script.
Without bitsandbytes the models train as bf16 LoRA (the table says so); without vLLM the
serving row says it was skipped.

    python bench/gpu_check.py [--steps-1b 30] [--steps-8b 10] [--only 1b|8b] \
        [--batch-size 16] [--workdir DIR] [--skip-vllm] [--vllm-eager] [--json FILE]

Without CUDA it prints why and exits with 77 (skipped: nothing was checked), before it
builds anything. Honesty note: this script was written on a machine without a GPU and has
not been run on one by its author; only the no-CUDA exit is tested (tests/integration/bench).
Exit codes: 0 every part ran and every loss fell, 1 a part failed or a loss did not fall.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SKIPPED = 77
SEQ_LEN = 4096
EXAMPLE_TOKENS = 1000  # about four examples per packed 4096-token row

ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # fmt: skip
SHAPES: dict[str, dict[str, Any]] = {
    "1b": {  # meta-llama/Llama-3.2-1B
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
        "vocab_size": 128256, "tie_word_embeddings": True, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_parameters": {**ROPE, "factor": 32.0}, "dtype": "bfloat16",
    },
    "8b": {  # meta-llama/Llama-3.1-8B
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_parameters": {**ROPE, "factor": 8.0}, "dtype": "bfloat16",
    },
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--steps-1b", type=int, default=30, help="optimiser steps of the 1B run")
    p.add_argument("--steps-8b", type=int, default=10, help="optimiser steps of the 8B run")
    p.add_argument("--only", choices=sorted(SHAPES), help="train one shape only")
    p.add_argument("--batch-size", type=int, default=16, help="examples per step (~4 rows)")
    p.add_argument("--lr-multiplier", type=float, default=5.0, help="learning_rate_multiplier")
    p.add_argument("--workdir", type=Path, help="kept if given; else a temporary folder")
    p.add_argument("--skip-vllm", action="store_true", help="train only")
    p.add_argument("--vllm-eager", action="store_true", help="vLLM --enforce-eager (faster start)")
    p.add_argument("--vllm-timeout", type=float, default=420.0, help="seconds for vLLM to start")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--child", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def cuda_problem() -> str | None:
    """Why this machine cannot run the check, or None."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"CUDA is not available to torch {torch.__version__} (no GPU, or a CPU build)"
    return None


# --- one training run (a child process) --------------------------------------------------------


class QuietChannel:
    """Progress messages are kept, not printed (the table says what matters)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: Any) -> str:  # a `contracts.messages.Message`
        self.messages.append(message.model_dump(mode="json"))
        return "continue"


def build_model(size: str, folder: Path) -> Path:
    import torch

    from testing.families import make_family_model

    if (folder / "config.json").exists():
        return folder
    try:  # random init on the GPU is minutes faster for 8B than on the CPU
        with torch.device("cuda"):
            make_family_model("llama3", folder, config_overrides=SHAPES[size])
    except (RuntimeError, TypeError) as e:
        print(f"gpu_check: init on the GPU failed ({e}); building on the CPU", file=sys.stderr)
        make_family_model("llama3", folder, config_overrides=SHAPES[size])
    gc.collect()
    torch.cuda.empty_cache()
    return folder


def write_dataset(path: Path, model_dir: Path, n_examples: int, seed: int = 7) -> int:
    """`n_examples` chat lines of about EXAMPLE_TOKENS tokens each; returns their tokens."""
    from bench._data import _fit, _Words
    from contracts.chat import ChatTokenizer

    chat = ChatTokenizer.from_folder(model_dir)
    rng = random.Random(seed)
    words = _Words(rng)
    total = 0
    with path.open("w") as out:
        for _ in range(n_examples):
            example = {
                "messages": [
                    {"role": "user", "content": words.text(rng.randint(8, 24))},
                    {"role": "assistant", "content": words.text(EXAMPLE_TOKENS)},
                ]
            }
            example = _fit(chat, example, EXAMPLE_TOKENS)
            total += chat.count_tokens(example)
            out.write(json.dumps(example) + "\n")
    return total


def child(args: argparse.Namespace) -> None:
    """Build the model and the data of `args.child`, train, and write the result as JSON."""
    import torch

    from contracts.local_store import LocalStore
    from contracts.spec import BaseModelRef, JobSpec, Method, SupervisedHyperparameters
    from trainer.loop import train
    from trainer.progress import Progress

    size, work = args.child, args.workdir
    quantization = "nf4" if importlib.util.find_spec("bitsandbytes") else "none"
    started = time.perf_counter()
    model_dir = build_model(size, work / f"model-{size}")
    built = time.perf_counter() - started
    store = LocalStore(work / "store")
    job_id = f"ftjob-gpucheck-{size}"
    data = store.root / "files" / f"train-{size}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    n_examples = args.steps * args.batch_size
    tokens = write_dataset(data, model_dir, n_examples)
    spec = JobSpec(
        job_id=job_id,
        base_model=BaseModelRef(
            name=f"llama-{size}-shape", path=str(model_dir), max_seq_len=SEQ_LEN
        ),
        training_file=store.key_url(f"files/{data.name}"),
        method=Method(
            supervised=SupervisedHyperparameters(
                n_epochs=1,
                batch_size=args.batch_size,
                learning_rate_multiplier=args.lr_multiplier,
            )
        ),
        quantization=quantization,
        output=store.key_url(f"jobs/{job_id}/"),
        checkpoint_every_steps=100_000,  # only the end-of-epoch checkpoint
    )
    torch.cuda.reset_peak_memory_stats()
    result = train(spec, Progress(QuietChannel()))
    losses = [row["train_loss"] for row in result.metrics]
    adapter = store.root / f"jobs/{job_id}/final/adapter"
    params = json.loads((model_dir / "config.json").read_text())
    args.result.write_text(
        json.dumps(
            {
                "size": size,
                "status": result.status,
                "quantization": quantization,
                "steps": result.step,
                "examples": n_examples,
                "dataset_tokens": tokens,
                "trained_tokens": result.trained_tokens,
                "seconds": result.seconds,
                "build_seconds": built,
                "tokens_per_second": result.tokens_per_second,
                "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20,
                "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None,
                "adapter": str(adapter) if adapter.is_dir() else None,
                "model_dir": str(model_dir),
                "hidden_size": params["hidden_size"],
                "layers": params["num_hidden_layers"],
                "gpu": torch.cuda.get_device_name(),
            }
        )
    )


def run_child(args: argparse.Namespace, size: str, steps: int, work: Path) -> dict[str, Any]:
    result = work / f"result-{size}.json"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", size, "--steps", str(steps),
        "--batch-size", str(args.batch_size), "--lr-multiplier", str(args.lr_multiplier),
        "--workdir", str(work), "--result", str(result),
    ]  # fmt: skip
    print(f"gpu_check: training the {size} shape ({steps} steps)...", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, check=False)
    if done.returncode != 0 or not result.exists():
        return {"size": size, "error": f"the training process exited with {done.returncode}"}
    out: dict[str, Any] = json.loads(result.read_text())
    out["wall_seconds"] = time.perf_counter() - started
    return out


# --- serving -----------------------------------------------------------------------------------


def _post(url: str, body: dict[str, Any], timeout: float = 120.0) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def first_token_seconds(base_url: str, model: str) -> float:
    """Seconds from sending a streamed chat completion to its first content chunk."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "What is the capital of Veloria?"}],
        "max_tokens": 16,
        "temperature": 0,
        "stream": True,
    }
    request = urllib.request.Request(
        base_url + "/v1/chat/completions",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as answer:
        for raw in answer:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                return time.perf_counter() - started
    raise RuntimeError(f"no content in the stream of {model}")


def serve(args: argparse.Namespace, trained: dict[str, Any], work: Path) -> dict[str, Any]:
    """Serve the 1B shape with GPU vLLM and its adapter; start-up and first-token times."""
    if args.skip_vllm:
        return {"skipped": "--skip-vllm"}
    if importlib.util.find_spec("vllm") is None:
        return {"skipped": "vllm is not installed (`bench/gpu_check.sh WHEEL_DIR` installs it)"}
    if not trained.get("adapter"):
        return {"skipped": "the 1B run left no adapter"}
    from serving.launcher import VLLM_MODULE, BaseModelEntry, ServingOptions, vllm_args

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    entry = BaseModelEntry(
        name="llama-1b-shape",
        path=trained["model_dir"],
        max_seq_len=SEQ_LEN,
        serving=ServingOptions(
            device="gpu",
            max_loras=2,
            max_lora_rank=16,
            gpu_memory_utilization=0.5,
            extra_args=("--enforce-eager",) if args.vllm_eager else (),
        ),
    )
    argv = [sys.executable, "-m", VLLM_MODULE, *vllm_args(entry, port=port)]
    # The runtime-LoRA routes as `whetstone up` runs them; the resolver plugin is not needed:
    # the adapter is loaded by path, as `Supervisor.load_adapter` does after its fetch.
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true", "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}  # fmt: skip
    log_path = work / "vllm.log"
    base_url = f"http://127.0.0.1:{port}"
    print("gpu_check: starting vLLM for the 1B shape...", flush=True)
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                return {"error": f"vLLM exited with {proc.returncode}: see {log_path}"}
            if time.perf_counter() - started > args.vllm_timeout:
                return {"error": f"vLLM not ready after {args.vllm_timeout:.0f}s: see {log_path}"}
            try:
                with urllib.request.urlopen(base_url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        startup = time.perf_counter() - started
        lora = "ft:llama-1b-shape:gpucheck:adapter"
        t0 = time.perf_counter()
        code, text = _post(
            base_url + "/v1/load_lora_adapter", {"lora_name": lora, "lora_path": trained["adapter"]}
        )
        if code != 200:
            return {"error": f"vLLM refused the adapter ({code}): {text[:300]}"}
        load = time.perf_counter() - t0
        base_first = first_token_seconds(base_url, entry.name)
        adapter_first = first_token_seconds(base_url, lora)
        adapter_again = first_token_seconds(base_url, lora)
        return {"startup_seconds": startup, "load_adapter_seconds": load,
                "base_first_token_seconds": base_first,
                "adapter_first_token_seconds": adapter_first,
                "adapter_second_first_token_seconds": adapter_again}  # fmt: skip
    except Exception as e:  # a failed serving check is a row of the table, not a traceback
        return {"error": f"{type(e).__name__}: {e} (vLLM log: {log_path})"}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- the table ---------------------------------------------------------------------------------


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(runs: list[dict[str, Any]], serving: dict[str, Any]) -> tuple[str, bool]:
    """The markdown tables (training, then serving) and whether every part passed."""
    ok = True
    lines = [
        "| training | quantization | steps × tokens | tokens/s | peak GPU memory "
        "| loss first → last |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        name = f"{r['size'].upper()} shape"
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | |")
            ok = False
            continue
        first, last = r["first_loss"], r["last_loss"]
        falling = first is not None and last is not None and last < first
        ok = ok and falling and r["status"] == "succeeded"
        quant = "NF4, bf16 compute" if r["quantization"] == "nf4" else "none (no bitsandbytes)"
        per_step = r["trained_tokens"] / max(1, r["steps"])
        lines.append(
            f"| {name} (hidden {r['hidden_size']}, {r['layers']} layers) | {quant} "
            f"| {r['steps']} × {per_step:,.0f} | {r['tokens_per_second']:,.0f} "
            f"| {r['peak_memory_mib'] / 1024:.1f} GiB "
            f"| {_loss(first)} → {_loss(last)} {'(falling)' if falling else '(NOT falling)'} |"
        )
    lines += [
        "",
        "| serving | vLLM start-up | adapter load | first token, base | first token, adapter "
        "| again |",
        "|---|---|---|---|---|---|",
    ]
    if "skipped" in serving:
        lines.append(f"| 1B shape + adapter, GPU vLLM | skipped: {serving['skipped']} | | | | |")
    elif "error" in serving:
        lines.append(f"| 1B shape + adapter, GPU vLLM | failed: {serving['error']} | | | | |")
        ok = False
    else:
        ms = {k: f"{v * 1000:.0f} ms" for k, v in serving.items()}
        lines.append(
            f"| 1B shape + adapter, GPU vLLM | {serving['startup_seconds']:.1f} s "
            f"| {ms['load_adapter_seconds']} | {ms['base_first_token_seconds']} "
            f"| {ms['adapter_first_token_seconds']} | {ms['adapter_second_first_token_seconds']} |"
        )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = cuda_problem()
    if problem is not None:
        print(f"gpu_check: skipped, {problem}: this check needs a CUDA GPU.", file=sys.stderr)
        return SKIPPED
    if args.child:
        child(args)
        return 0
    import torch

    gpu = torch.cuda.get_device_properties(0)
    print(f"gpu_check: {gpu.name}, {gpu.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")
    if importlib.util.find_spec("bitsandbytes") is None:
        print("gpu_check: bitsandbytes is missing: training bf16 LoRA, not QLoRA", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whetstone-gpu-check-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sizes = [args.only] if args.only else ["1b", "8b"]
        steps = {"1b": args.steps_1b, "8b": args.steps_8b}
        runs = [run_child(args, size, steps[size], work) for size in sizes]
        one_b = next((r for r in runs if r["size"] == "1b" and "error" not in r), {})
        if "1b" in sizes:
            serving = serve(args, one_b, work)
        else:
            serving = {"skipped": "--only 8b"}
        text, ok = table(runs, serving)
        print(f"\n{text}\n\ntotal {time.perf_counter() - started:.0f} s on {gpu.name}")
        if args.json:
            args.json.write_text(json.dumps({"runs": runs, "serving": serving}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
