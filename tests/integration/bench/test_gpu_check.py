"""The GPU check: its no-CUDA exit, its table, and its model shapes (no GPU needed).

The CUDA paths (training, vLLM) cannot run here; `bench/gpu_check.py` says so itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from bench import gpu_check  # noqa: E402

torch = pytest.importorskip("torch")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def _cpu_env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}


@needs_no_cuda
def test_without_cuda_it_says_so_and_exits_skipped(tmp_path: Path) -> None:
    work = tmp_path / "work"
    command = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--workdir", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_cpu_env())
    assert done.returncode == gpu_check.SKIPPED == 77
    assert "gpu_check: skipped, CUDA is not available" in done.stderr
    assert "this check needs a CUDA GPU" in done.stderr
    assert not work.exists()  # nothing was built


@needs_no_cuda
def test_the_shell_wrapper_without_wheels_runs_the_check(tmp_path: Path) -> None:
    script = ROOT / "bench" / "gpu_check.sh"
    done = subprocess.run(
        ["bash", str(script), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=300,
        env=_cpu_env(),
    )
    assert done.returncode == 77, done.stdout + done.stderr
    assert "installing" not in done.stdout  # no wheel folder: nothing is installed
    assert "this check needs a CUDA GPU" in done.stderr


def _run(size: str, first: float, last: float) -> dict[str, Any]:
    return {
        "size": size, "status": "succeeded", "quantization": "nf4", "steps": 30,
        "trained_tokens": 30 * 16000, "tokens_per_second": 21000.0,
        "peak_memory_mib": 9000.0, "first_loss": first, "last_loss": last,
        "hidden_size": 2048, "layers": 16,
    }  # fmt: skip


def test_table_passes_only_when_every_loss_falls() -> None:
    serving = {"skipped": "vllm is not installed"}
    text, ok = gpu_check.table([_run("1b", 12.0, 6.5), _run("8b", 12.0, 8.0)], serving)
    assert ok
    assert "| 1B shape (hidden 2048, 16 layers) | NF4, bf16 compute | 30 × 16,000 | 21,000" in text
    assert "12.000 → 6.500 (falling)" in text
    assert "| 1B shape + adapter, GPU vLLM | skipped: vllm is not installed |" in text
    text, ok = gpu_check.table([_run("1b", 12.0, 12.5)], serving)
    assert not ok and "(NOT falling)" in text
    _, ok = gpu_check.table([{"size": "8b", "error": "exited with 1"}], serving)
    assert not ok


def test_table_with_serving_times() -> None:
    serving = {
        "startup_seconds": 61.2, "load_adapter_seconds": 0.4, "base_first_token_seconds": 0.021,
        "adapter_first_token_seconds": 0.035, "adapter_second_first_token_seconds": 0.02,
    }  # fmt: skip
    text, ok = gpu_check.table([_run("1b", 12.0, 6.0)], serving)
    assert (
        ok and "| 1B shape + adapter, GPU vLLM | 61.2 s | 400 ms | 21 ms | 35 ms | 20 ms |" in text
    )
    _, ok = gpu_check.table([_run("1b", 12.0, 6.0)], {"error": "vLLM exited with 1"})
    assert not ok


@pytest.mark.parametrize(("size", "billions"), [("1b", 1.24), ("8b", 8.03)])
def test_shapes_are_the_real_models(size: str, billions: float) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**{k: v for k, v in gpu_check.SHAPES[size].items() if k != "dtype"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(params - billions) < 0.01
