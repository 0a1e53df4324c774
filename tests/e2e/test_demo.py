"""`make demo`'s script as a newcomer runs it: `examples/demo.py` starts `whetstone up`
(whose output it pipes, so the first key comes from the data folder's key file), fine-tunes
the built-in model on examples/veloria.jsonl and prints the base and tuned answers side by
side. The tuned model gives each trained answer back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = 5  # examples/demo.py asks the first five


def test_the_demo_fine_tunes_and_the_tuned_model_answers_as_trained() -> None:
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}  # one table row a line
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "Demo finished in" in run.stdout
    lines = (ROOT / "examples" / "veloria.jsonl").read_text().splitlines()
    for line in lines[:QUESTIONS]:
        _, question, answer = (m["content"] for m in json.loads(line)["messages"])
        row = next(r for r in run.stdout.splitlines() if question in r)
        assert row.count(answer) == 2, row  # the trained answer, and the tuned model's
    assert not (ROOT / ".whetstone-demo" / "first-api-key").exists()  # read, then deleted
