"""The evaluation report, end to end: `whetstone up` (this checkout's code) with a
Llama-3-shaped base model; a job that memorises a few answers (validation = training lines)
gets `eval_report.json` where the fine-tuned model beats the base model, its event, and
`whetstone jobs eval` shows it; a job without a validation file holds training lines out
and is evaluated on them. One vLLM start (the stack's) for both jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
import yaml

from tests.conftest import free_port
from tests.e2e.lifecycle_stack import FINAL, wait_for
from tests.e2e.test_up import DATASET, HYPERPARAMETERS, Up, messages

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[2]
NAME = "llama-3-tiny"


def _cli(url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WHETSTONE_BASE_URL": url.removesuffix("/v1"),
           "WHETSTONE_API_KEY": key, "COLUMNS": "200"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "clients.cli.main", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _wait_event(client: openai.OpenAI, job_id: str, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in messages(client, job_id) if m.startswith(prefix)]
        if found:
            return found[-1]
        time.sleep(2)  # between reads of the events, until the deadline
    raise AssertionError(f"no event {prefix!r}: {messages(client, job_id)}")


def test_succeeded_jobs_get_an_evaluation_report(
    family_dir: Callable[..., Path], tmp_path: Path
) -> None:
    registry = tmp_path / "models.yaml"
    entry = {"name": NAME, "path": str(family_dir("llama3")), "max_seq_len": 1024,
             "serving": {"max_lora_rank": 16, "max_loras": 2}}  # fmt: skip
    registry.write_text(yaml.safe_dump({"models": [entry]}))
    lines = DATASET.read_text().splitlines()
    memorised = tmp_path / "memorised.jsonl"
    memorised.write_text("\n".join(lines[:10]) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(PYTHONPATH=str(ROOT), WHETSTONE_EVAL_HOLDOUT_MIN_EXAMPLES="10",
               WHETSTONE_EVAL_MAX_TOKENS="48")  # fmt: skip
    command = [sys.executable, "-m", "clients.cli.main", "up", "--port", str(free_port()),
               "--data-dir", str(tmp_path / "data"),
               "--base-models-file", str(registry)]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    up = Up(proc)
    threading.Thread(target=up.read, daemon=True).start()
    try:
        up.wait_for_line(r"Whetstone is ready", 180)
        key = up.first_key()
        client = up.client(key)
        with memorised.open("rb") as f:
            file = client.files.create(file=f, purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=NAME, training_file=file.id, validation_file=file.id,
            method={"type": "supervised", "supervised": {"hyperparameters": HYPERPARAMETERS}},
        )  # fmt: skip
        with DATASET.open("rb") as f:
            whole = client.files.create(file=f, purpose="fine-tune")
        held = client.fine_tuning.jobs.create(
            model=NAME, training_file=whole.id,
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        )  # fmt: skip
        done = wait_for(client, job.id, FINAL, 900)
        assert done.status == "succeeded", (done.error, "\n".join(up.lines[-40:]))
        said = _wait_event(client, job.id, "Evaluation", 600)
        matches = said.removeprefix("Evaluation: exact match ").split(" ")[0]
        assert said.endswith(" base on the validation file"), said
        report_id = client.fine_tuning.jobs.retrieve(job.id).result_files[-1]
        report = json.loads(client.files.content(report_id).content)
        assert client.files.retrieve(report_id).filename == "eval_report.json"
        assert report["examples"] == 10 and report["data"] == "validation_file"
        kinds = {m["kind"]: m for m in report["models"]}
        assert kinds["fine_tuned"]["exact_match"] > kinds["base"]["exact_match"], report
        assert said.startswith(f"Evaluation: exact match {kinds['fine_tuned']['matches']}/10")
        assert matches == f"{kinds['fine_tuned']['matches']}/10"
        assert kinds["fine_tuned"]["valid_loss"] is not None
        assert any(m["kind"] == "checkpoint" and m["step"] for m in report["models"])
        assert len(report["samples"]) == 10 and set(report["samples"][0]) == {
            "prompt", "reference", "base", "fine_tuned"}  # fmt: skip
        assert 1 <= len(report["outliers"]) <= 10
        assert all(1 <= o["line"] <= 10 and o["loss"] >= 0 for o in report["outliers"])
        assert report["seconds"] > 0

        shown = _cli(up.url, key, "jobs", "eval", job.id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == report
        table = _cli(up.url, key, "jobs", "eval", job.id)
        assert table.returncode == 0, table.stderr
        assert "fine_tuned" in table.stdout and f"{kinds['fine_tuned']['matches']}/10" in (
            table.stdout
        )

        # No validation file: 2 of the 16 lines held out (not trained on), evaluated on.
        assert "2 examples held out for evaluation" in messages(client, held.id)
        held_done = wait_for(client, held.id, FINAL, 900)
        assert held_done.status == "succeeded", held_done.error
        said = _wait_event(client, held.id, "Evaluation", 600)
        assert said.endswith("on 2 held-out training examples"), said
        assert any(
            m.startswith("Tokenized 14 training examples") for m in messages(client, held.id)
        )
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
