"""A reinforcement fine-tuning job through the official `openai` package, trained for real on
the CPU (the trainer's GRPO recipe on the small built-in model): created with a `string_check`
grader on a file of prompts, it reaches `succeeded` with reward events, checkpoints whose
metrics carry the rewards, and the metrics CSV with the reinforcement columns.

The base model has random weights, so its answers are not expected to earn rewards: the
test checks that every step was graded and reported, not that the model learns (the trainer's
own tests show that)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.layout import REINFORCEMENT_METRICS_COLUMNS
from tests.e2e.lifecycle_stack import FINAL, QA, Stack, events, start_stack, wait_for

pytestmark = pytest.mark.slow

GRADER = {
    "type": "string_check",
    "name": "code_word",
    "input": "{{sample.output_text}}",
    "reference": "{{item.code_word}}",
    "operation": "ilike",
}


def prompts(n: int) -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": q}], "code_word": a.split()[-1].rstrip(".")}
        for q, a in QA[:n]
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Stack]:
    # A reinforcement step samples and grades before it reports: on a shared CPU it takes
    # longer than the other tests' 8 s lease (production's is 60 s, with 30 s heartbeats).
    # A 48-token context keeps the random model's answers short (about 30 tokens: the
    # trainer never samples past the context), where 256 would take minutes a step.
    with start_stack(
        tmp_path_factory.mktemp("rft"), base_model_dir, max_seq_len=48,
        scheduler_lease_seconds="120",
    ) as s:  # fmt: skip
        yield s


def test_an_rft_job_runs_to_succeeded_with_rewards(stack: Stack) -> None:
    client = stack.client()
    train = client.files.create(file=("prompts.jsonl", prompts(10)), purpose="fine-tune")
    valid = client.files.create(file=("valid.jsonl", prompts(2)), purpose="fine-tune")
    hyperparameters = {"n_epochs": 1, "batch_size": 5, "compute_multiplier": 0.5,
                       "eval_interval": 1, "eval_samples": 1}  # fmt: skip
    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny",
        training_file=train.id,
        validation_file=valid.id,
        method={"type": "reinforcement",
                "reinforcement": {"grader": GRADER, "hyperparameters": hyperparameters}},
    )  # fmt: skip
    assert job.method is not None and job.method.type == "reinforcement"

    done = wait_for(client, job.id, FINAL, timeout=480)
    assert done.status == "succeeded", stack.logs()
    assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:whetstone-tiny:alpha::")
    assert done.method is not None and done.method.reinforcement is not None
    assert done.method.reinforcement.grader.model_dump(exclude_none=True) == GRADER
    hp = done.method.reinforcement.hyperparameters
    assert hp is not None
    assert (hp.n_epochs, hp.batch_size, hp.compute_multiplier) == (1, 5, 0.5)
    assert (hp.eval_interval, hp.eval_samples) == (1, 1)
    assert hp.learning_rate_multiplier == 0.25  # reinforcement's auto (no registry `auto` here)

    log = events(client, job.id)
    metrics = [e.data for e in log if e.type == "metrics" and e.data]
    assert [m["step"] for m in metrics] == [1, 2]  # 10 prompts, 5 a step, one epoch
    for m in metrics:
        assert 0 <= m["train_reward_mean"] <= 1 and 0 <= m["valid_reward_mean"] <= 1
    assert any("train reward mean=" in e.message for e in log if e.type == "metrics")

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [2]
    assert checkpoints[0].metrics.model_extra is not None
    assert "train_reward_mean" in checkpoints[0].metrics.model_extra

    rows = list(csv.DictReader(io.StringIO(client.files.content(done.result_files[0]).text)))
    assert tuple(rows[0]) == REINFORCEMENT_METRICS_COLUMNS
    assert [r["step"] for r in rows] == ["1", "2"]
    for row, m in zip(rows, metrics, strict=True):
        assert float(row["train_reward_mean"]) == pytest.approx(m["train_reward_mean"], abs=1e-5)
