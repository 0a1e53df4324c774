"""`python -m trainer run` refuses a bad spec or bad data with exit code 2, a `failed` message
and one clear line on stderr, never a bare traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.trainer.conftest import write_spec

REPO = Path(__file__).resolve().parents[3]


def _run(spec_url: str) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--spec", spec_url],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, messages, result.stderr


def _assert_refused(spec_url: str, message_start: str, code: str) -> None:
    rc, messages, stderr = _run(spec_url)
    assert rc == 2, stderr
    assert messages[-1]["type"] == "failed" and messages[-1]["code"] == code
    assert messages[-1]["message"].startswith(message_start), messages[-1]
    assert f"error: {message_start}" in stderr and "Traceback" not in stderr


def test_malformed_spec_json(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text('{"job_id": "x", ')
    _assert_refused((tmp_path / "spec.json").as_uri(), "invalid spec: ", "invalid_spec")


def test_spec_with_a_bad_field(make_spec: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    spec = make_spec(training_file="file:///nowhere.jsonl", quantization="int3")
    _assert_refused(write_spec(spec, tmp_path), "invalid spec: quantization:", "invalid_spec")


def test_missing_spec(tmp_path: Path) -> None:
    _assert_refused((tmp_path / "nope.json").as_uri(), "spec not found", "invalid_spec")


@pytest.mark.parametrize("content", [None, "not json\n"])
def test_missing_or_bad_training_file(
    make_spec: Callable[..., dict[str, Any]], tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "train.jsonl"
    if content is not None:
        path.write_text(content)
    expected = "training_file not found" if content is None else "line 1: invalid JSON"
    spec = make_spec(training_file=path.as_uri())
    _assert_refused(write_spec(spec, tmp_path), expected, "invalid_training_file")


def test_missing_adapter_to_continue_from(
    make_spec: Callable[..., dict[str, Any]], qa_files: dict[str, str], tmp_path: Path
) -> None:
    gone = (tmp_path / "objects" / "jobs" / "ftjob-parent" / "final" / "adapter").as_uri() + "/"
    spec = make_spec(**qa_files, init_adapter=gone)
    _assert_refused(
        write_spec(spec, tmp_path), "adapter to continue from not found", "invalid_checkpoint"
    )


def test_a_resume_state_crafted_to_run_code_fails_the_job_and_runs_nothing(
    make_spec: Callable[..., dict[str, Any]], qa_files: dict[str, str], tmp_path: Path
) -> None:
    from tests.unit.trainer.test_resume_state import _checkpoint, crafted_resume_state

    marker = tmp_path / "pwned"
    crafted = crafted_resume_state(marker, tmp_path)
    url = _checkpoint(tmp_path / "objects" / "jobs" / "ftjob-test", crafted)
    spec = make_spec(**qa_files, resume_from=url, attempt=2)
    rc, messages, stderr = _run(write_spec(spec, tmp_path))
    assert not marker.exists()
    assert rc == 2 and "Traceback" not in stderr, stderr
    failed = messages[-1]
    assert failed["type"] == "failed" and failed["code"] == "invalid_checkpoint"
    assert failed["param"] == "resume_from"
    assert failed["message"].startswith(f"cannot resume from checkpoint {url} (step 3)")
