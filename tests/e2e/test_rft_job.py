"""A reinforcement fine-tuning job through the official `openai` package, trained for real on
the CPU (the trainer's GRPO recipe on the small built-in model): created with a `string_check`
grader on a file of prompts, it reaches `succeeded` with reward events, checkpoints whose
metrics carry the rewards, and the metrics CSV with the reinforcement columns. A second job
grades with a `multi` grader whose `score_model` the trainer asks through the service's
grader relay (`/internal/v1/jobs/{id}/grader/chat`), answered by the operator's grading
endpoint (a stand-in on a loopback port that records each request).

The base model has random weights, so its answers are not expected to earn rewards: the
test checks that every step was graded and reported, not that the model learns (the trainer's
own tests show that)."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


class Judge(BaseHTTPRequestHandler):
    """The operator's grading endpoint: every answer scores 0.75; each request recorded."""

    asked: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Judge.asked.append({"auth": self.headers.get("authorization"), **body})
        answer = {
            "model": "judge",
            "choices": [{"index": 0, "message": {"role": "assistant",
                                                 "content": '{"result": 0.75}'}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
        }  # fmt: skip
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def judge() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path, judge: str
) -> Iterator[Stack]:
    # A reinforcement step samples and grades before it reports: on a shared CPU it takes
    # longer than the other tests' 8 s lease (production's is 60 s, with 30 s heartbeats).
    # A 48-token context keeps the random model's answers short (about 30 tokens: the
    # trainer never samples past the context), where 256 would take minutes a step.
    with start_stack(
        tmp_path_factory.mktemp("rft"), base_model_dir, max_seq_len=48,
        scheduler_lease_seconds="120", grader_models_url=judge,
        grader_models_api_key="sk-grading", grader_models='["judge"]',
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


def test_a_model_grader_is_asked_through_the_services_relay(stack: Stack) -> None:
    client = stack.client()
    train = client.files.create(file=("prompts.jsonl", prompts(10)), purpose="fine-tune")
    judged = {"type": "score_model", "name": "judge", "model": "judge", "range": [0, 1],
              "input": [{"role": "user", "content": "Rate: {{sample.output_text}}"}]}  # fmt: skip
    grader = {"type": "multi", "name": "both", "graders": {"exact": GRADER, "judge": judged},
              "calculate_output": "0.5 * exact + 0.5 * judge"}  # fmt: skip
    hyperparameters = {"n_epochs": 1, "batch_size": 10, "compute_multiplier": 0.5}
    Judge.asked = []
    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny",
        training_file=train.id,
        method={"type": "reinforcement",
                "reinforcement": {"grader": grader, "hyperparameters": hyperparameters}},
    )  # fmt: skip
    done = wait_for(client, job.id, FINAL, timeout=480)
    assert done.status == "succeeded", stack.logs()

    # 10 prompts x 2 answers, each judged once, with the operator's key (never the token)
    assert len(Judge.asked) == 20
    assert {a["auth"] for a in Judge.asked} == {"Bearer sk-grading"}
    assert all(a["model"] == "judge" and "Rate: " in json.dumps(a["messages"])
               for a in Judge.asked)  # fmt: skip
    (metrics,) = [e.data for e in events(client, job.id) if e.type == "metrics" and e.data]
    assert metrics["train_reward/judge"] == pytest.approx(0.75)
    assert metrics["train_reward_mean"] == pytest.approx(
        0.5 * metrics["train_reward/exact"] + 0.375
    )
    rows = list(csv.DictReader(io.StringIO(client.files.content(done.result_files[0]).text)))
    assert tuple(rows[0])[: len(REINFORCEMENT_METRICS_COLUMNS)] == REINFORCEMENT_METRICS_COLUMNS
    assert {"train_reward/exact", "train_reward/judge"} <= set(rows[0])
    assert float(rows[0]["train_reward/judge"]) == pytest.approx(0.75)
