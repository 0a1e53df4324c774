"""A DPO job through the official `openai` package, trained for real on the CPU, continuing
from a checkpoint of a supervised job (`ft:...:ckpt-step-N`): both reach `succeeded`, and
the DPO job's events and result file carry DPO's metrics."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.layout import DPO_METRICS_COLUMNS
from tests.conftest import require
from tests.e2e.lifecycle_stack import FINAL, QA, Stack, create_job, events, start_stack, wait_for

pytestmark = pytest.mark.slow


def preferences() -> bytes:
    lines = [
        {
            "input": {"messages": [{"role": "user", "content": q}]},
            "preferred_output": [{"role": "assistant", "content": a}],
            "non_preferred_output": [{"role": "assistant", "content": "I do not know."}],
        }
        for q, a in QA
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("dpo"), base_model_dir) as s:
        yield s


def test_dpo_job_continues_from_a_checkpoint_and_reports_dpo_metrics(stack: Stack) -> None:
    client = stack.client()
    sft_id = create_job(client, n_epochs=1, batch_size=4)  # 12 examples: 3 steps
    sft = wait_for(client, sft_id, FINAL)
    assert sft.status == "succeeded", stack.logs()
    checkpoint = f"{sft.fine_tuned_model}:ckpt-step-3"
    assert checkpoint in {c.fine_tuned_model_checkpoint
                          for c in client.fine_tuning.jobs.checkpoints.list(sft_id)}  # fmt: skip

    file = client.files.create(file=("pref.jsonl", preferences()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=checkpoint, training_file=file.id, validation_file=file.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {
            "beta": 0.1, "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 5}}},
    )  # fmt: skip
    done = wait_for(client, job.id, FINAL)
    assert done.status == "succeeded", stack.logs()
    assert done.model == checkpoint
    assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:whetstone-tiny:alpha::")
    assert done.method is not None and done.method.type == "dpo"
    assert done.method.dpo is not None and done.method.dpo.hyperparameters is not None
    assert done.method.dpo.hyperparameters.beta == 0.1

    log = events(client, job.id)
    assert any("reference log-probabilities" in e.message and "continued from" in e.message
               for e in log)  # fmt: skip
    metrics = [e.data for e in log if e.type == "metrics" and e.data]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert {"train_loss", "train_reward_margin", "train_reward_accuracy"} <= set(m)
        assert 0 <= m["train_reward_accuracy"] <= 1
    assert metrics[0]["train_loss"] == pytest.approx(0.6931, abs=2e-3)  # policy = reference
    assert metrics[-1]["train_reward_margin"] > 0

    rows = list(csv.DictReader(io.StringIO(client.files.content(done.result_files[0]).text)))
    assert tuple(rows[0]) == DPO_METRICS_COLUMNS and [r["step"] for r in rows] == ["1", "2", "3"]
    for row, m in zip(rows, metrics, strict=True):
        assert float(row["train_reward_margin"]) == pytest.approx(
            m["train_reward_margin"], abs=1e-5
        )


NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_the_openai_npm_package_runs_a_dpo_job_to_its_end(stack: Stack) -> None:
    """tests/node/dpo.mjs: the file through an Upload in two parts, the job with `beta`,
    polled to `succeeded`, its events paged through by the npm package itself."""
    node = shutil.which("node")
    require(node is not None, "node not installed (install Node.js 20+)")
    require((NODE_DIR / "node_modules" / "openai").is_dir(), "tests/node not installed: make node")
    assert node is not None
    env = {
        "PATH": "/usr/bin:/bin",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{stack.port}/v1",
        "OPENAI_API_KEY": stack.key,
        "WHETSTONE_DPO_FILE": base64.b64encode(preferences()).decode(),
    }
    result = subprocess.run(
        [node, str(NODE_DIR / "dpo.mjs")], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["completed"]["status"] == "completed"
    job = seen["job"]
    assert job["status"] == "succeeded", stack.logs()
    assert job["method"]["type"] == "dpo" and job["method"]["dpo"]["hyperparameters"]["beta"] == 0.1
    assert job["fine_tuned_model"].startswith("ft:whetstone-tiny:alpha::")
    metrics = [e["data"] for e in seen["events"] if e["type"] == "metrics"]
    assert metrics and all("train_reward_margin" in m for m in metrics)
    messages = [e["message"] for e in seen["events"]]
    assert "The job has successfully completed" in messages
    assert len(seen["events"]) > 5  # more than one page: the package followed `has_more`
