"""Exact resume: a run stopped after checkpoint k (SIGKILL, or a pause) and resumed from it
ends with the same adapter weights as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts import layout
from contracts.spec import JobSpec
from contracts.store_url import open_store
from tests.integration.trainer.conftest import write_spec
from tests.integration.trainer.test_train import Recorder
from trainer.loop import train
from trainer.progress import Progress

REPO = Path(__file__).resolve().parents[3]


def _spec(
    make_spec: Callable[..., dict[str, Any]], files: dict[str, str], name: str, **kw: Any
) -> dict[str, Any]:
    output = (Path(files["training_file"][7:]).parent.parent / name).as_uri() + "/"
    options = {"lora": {"r": 8, "alpha": 16, "dropout": 0.1}, "checkpoint_every_steps": 3, **kw}
    return make_spec(job_id="ftjob-resume", **files, output=output, **options)


def _final_weights(output: str) -> dict[str, Any]:
    from safetensors.torch import load

    return load(open_store(output).get_bytes(layout.FINAL_ADAPTER + "adapter_model.safetensors"))


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    import torch

    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.fixture()
def reference_output(qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]) -> str:
    """The output folder of an uninterrupted QLoRA run (2 epochs, 8 steps, LoRA dropout on)."""
    spec = JobSpec.model_validate(_spec(make_spec, qa_files, "reference"))
    assert train(spec, Progress(Recorder(), heartbeat_seconds=0)).status == "succeeded"
    return spec.output


@pytest.fixture()
def reference(reference_output: str) -> dict[str, Any]:
    """The final adapter of the uninterrupted run."""
    return _final_weights(reference_output)


def _outliers(output: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(open_store(output).get_bytes(layout.EXAMPLE_LOSSES))[
        "examples"
    ]
    return rows


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(
    reference: dict[str, Any], qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    spec = _spec(make_spec, qa_files, "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "run", "--spec", write_spec(spec, tmp_path / "specs")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(), cwd=REPO,
    )  # fmt: skip
    checkpoint = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            if message["type"] == "checkpoint" and message["step"] == 3:
                checkpoint = message
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert checkpoint is not None and proc.returncode == -signal.SIGKILL
    assert not open_store(spec["output"]).exists(layout.METRICS)  # it really did not finish

    resumed = JobSpec.model_validate({**spec, "resume_from": checkpoint["url"], "attempt": 2})
    recorder = Recorder()
    result = train(resumed, Progress(recorder, heartbeat_seconds=0))
    assert recorder.of_type("started")[0]["resumed_from_step"] == 3
    assert [m["step"] for m in recorder.of_type("metrics")] == [4, 5, 6, 7, 8]
    assert result.status == "succeeded" and result.step == 8
    _assert_same(_final_weights(resumed.output), reference)
    rows = open_store(resumed.output).get_bytes(layout.METRICS).decode().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(n) for n in range(1, 9)]


@pytest.mark.slow
def test_resume_after_pause_matches_an_uninterrupted_run(
    reference: dict[str, Any], qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    spec = _spec(make_spec, qa_files, "paused")
    first = train(
        JobSpec.model_validate(spec),
        Progress(Recorder(lambda m: "pause" if m.get("step") == 5 else "continue"), 0),
    )
    assert first.status == "paused" and first.step == 5
    url = open_store(spec["output"]).key_url(layout.checkpoint_dir(5))
    resumed = JobSpec.model_validate({**spec, "resume_from": url})
    assert train(resumed, Progress(Recorder(), 0)).status == "succeeded"
    _assert_same(_final_weights(resumed.output), reference)


@pytest.mark.slow
def test_without_dropout_a_run_resumed_on_other_cores_matches_an_uninterrupted_one(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]
) -> None:
    """Without dropout, a step's micro-batches share the CPU's cores (`trainer.cores`): paused
    on two cores and resumed on one, a run ends with the weights of one never paused, to the
    bit (each micro-batch's gradients are added up in the same order whatever the threads)."""
    import torch

    no_dropout = {"lora": {"r": 8, "alpha": 16, "dropout": 0.0}}
    reference = JobSpec.model_validate(_spec(make_spec, qa_files, "cores-reference", **no_dropout))
    spec = _spec(make_spec, qa_files, "cores", **no_dropout)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert train(reference, Progress(Recorder(), 0)).status == "succeeded"
        first = train(
            JobSpec.model_validate(spec),
            Progress(Recorder(lambda m: "pause" if m.get("step") == 5 else "continue"), 0),
        )
        assert first.status == "paused" and first.step == 5
        torch.set_num_threads(1)
        url = open_store(spec["output"]).key_url(layout.checkpoint_dir(5))
        resumed = JobSpec.model_validate({**spec, "resume_from": url})
        assert train(resumed, Progress(Recorder(), 0)).status == "succeeded"
    finally:
        torch.set_num_threads(threads)
    ours, theirs = _final_weights(resumed.output), _final_weights(reference.output)
    assert ours.keys() == theirs.keys() and len(ours) > 0
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


@pytest.mark.slow
def test_outliers_survive_a_pause_in_the_last_epoch(
    reference_output: str, qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]
) -> None:
    """The outliers come from the last epoch's own losses; a pause halfway through that
    epoch (step 6 of 5..8) carries the losses so far in the resume state, so the resumed job
    reports the same lines with the same losses as the uninterrupted one."""
    spec = _spec(make_spec, qa_files, "paused-outliers")
    first = train(
        JobSpec.model_validate(spec),
        Progress(Recorder(lambda m: "pause" if m.get("step") == 6 else "continue"), 0),
    )
    assert first.status == "paused" and first.step == 6
    url = open_store(spec["output"]).key_url(layout.checkpoint_dir(6))
    recorder = Recorder()
    resumed = JobSpec.model_validate({**spec, "resume_from": url})
    assert train(resumed, Progress(recorder, 0)).status == "succeeded"
    expected, got = _outliers(reference_output), _outliers(resumed.output)
    assert len(got) == 10 and [r["line"] for r in got] == [r["line"] for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    # no second pass over the training file at the end: every loss came from the epoch
    assert not [m for m in recorder.of_type("log") if "final loss" in m.get("message", "")]


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_zero(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    spec = _spec(make_spec, qa_files, "terminated", checkpoint_every_steps=50, quantization="none")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "run", "--spec", write_spec(spec, tmp_path / "specs")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(), cwd=REPO,
    )  # fmt: skip
    messages = []
    assert proc.stdout is not None
    for line in proc.stdout:
        messages.append(json.loads(line))
        if messages[-1]["type"] == "metrics" and messages[-1]["step"] == 1:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    checkpoints = [m for m in messages if m["type"] == "checkpoint"]
    assert len(checkpoints) == 1 and not [m for m in messages if m["type"] == "finished"]
    step = checkpoints[0]["step"]
    assert [c.step for c in layout.complete_checkpoints(open_store(spec["output"]))] == [step]
