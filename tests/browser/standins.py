"""Jobs for the dashboard to show, made in seconds without training.

Files and jobs are created through the API; what the scheduler and the trainer would then
record (statuses, `metrics` events, checkpoints, the result CSV, the final model) is written
straight into the server's SQLite database with the jobs domain functions, as
`tests.serving_stack.succeed_job` does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

QA = [(f"What is the code word number {i}?", f"The code word is w{i}x.") for i in range(8)]
STEPS = 40
CHECKPOINT_STEPS = (20, 40)
VALID_EVERY = 5


def dataset(n: int = len(QA)) -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in QA[:n]
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def api(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def create_job(url: str, key: str, suffix: str, **extra: object) -> str:
    with api(url, key) as http:
        up = http.post(
            "/v1/files",
            files={"file": ("qa.jsonl", dataset())},
            data={"purpose": "fine-tune"},
        )
        up.raise_for_status()
        body = {
            "model": "whetstone-tiny",
            "training_file": up.json()["id"],
            "suffix": suffix,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 5, "learning_rate_multiplier": 2}},
            },
            **extra,
        }
        job = http.post("/v1/fine_tuning/jobs", json=body)
        job.raise_for_status()
        return str(job.json()["id"])


@contextmanager
def db(data_dir: Path) -> Iterator[Session]:
    engine = create_engine(f"sqlite:///{data_dir / 'whetstone.db'}")
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def loss(step: int) -> float:
    return round(2.5 * math.exp(-step / 12) + 0.1 + 0.05 * math.sin(step), 4)


def start_running(data_dir: Path, job_id: str, steps: int) -> None:
    """queued -> running, resolved hyperparameters, and `steps` metrics events."""
    from service.db.tables import FineTuningJob
    from service.fine_tuning import service as jobs
    from service.fine_tuning.status import JobStatus

    with db(data_dir) as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        job.created_at -= 30 + 5 * steps  # as long ago as the steps would have taken
        jobs.transition(session, job, JobStatus.QUEUED)
        jobs.record_hyperparameters(job, {"n_epochs": 5, "batch_size": 1})
        jobs.transition(session, job, JobStatus.RUNNING)
        jobs.add_event(session, job, "Tokenized 8 training examples (224 tokens)")
    add_steps(data_dir, job_id, range(1, steps + 1))


def attempt_ended(data_dir: Path, job_id: str) -> None:
    """What the scheduler does once a pausing job's trainer has stopped: `paused`."""
    from service.db.tables import FineTuningJob
    from service.fine_tuning import service as jobs

    with db(data_dir) as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None and jobs.paused_if_pausing(session, job)


def add_steps(data_dir: Path, job_id: str, steps: Iterable[int]) -> None:
    """More `metrics` events, as a running trainer reports them."""
    from service.db.tables import FineTuningJob
    from service.fine_tuning import service as jobs

    with db(data_dir) as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        for step in steps:
            valid = loss(step) + 0.15 if step % VALID_EVERY == 0 else None
            jobs.add_metrics_event(
                session, job, step, STEPS, {"train_loss": loss(step), "valid_loss": valid}
            )


def succeed(data_dir: Path, job_id: str, store_url: str) -> str:
    """Checkpoints, the results CSV and the final model; the job `succeeded`. Returns the
    fine-tuned model's name."""
    from contracts.layout import ADAPTER, final_adapter_prefix
    from contracts.messages import StepMetrics
    from contracts.store_url import open_store
    from service.db.tables import FineTuningJob
    from service.fine_tuning import service as jobs
    from service.fine_tuning.results import save_result_file
    from service.models import lifecycle

    store = open_store(store_url)
    with db(data_dir) as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        for step in CHECKPOINT_STEPS:
            metrics = StepMetrics(train_loss=loss(step), valid_loss=loss(step) + 0.15)
            row = jobs.register_checkpoint(session, job, step, metrics)
            name, adapter = row.fine_tuned_model_checkpoint, row.store_key + ADAPTER
            lifecycle.publish(session, store, job, name, "checkpoint", adapter)
        csv = "step,train_loss\n" + "".join(f"{s},{loss(s)}\n" for s in range(1, STEPS + 1))
        key = f"jobs/{job_id}/metrics.csv"
        store.put_bytes(key, csv.encode())
        result = save_result_file(session, store, job, key)
        jobs.mark_succeeded(
            session, job, trained_tokens=224 * 5, result_files=[result.id] if result else []
        )
        lifecycle.publish(
            session, store, job, job.output_model, "final", final_adapter_prefix(job.id)
        )
        return str(job.fine_tuned_model)


def evaluated(
    data_dir: Path, job_id: str, store_url: str, source: list[str] | None = None
) -> dict[str, object]:
    """The job's evaluation report, as the scheduler's evaluator records it: the fine-tuned
    model answers all of `QA` but the last, the base model none (and a source model's
    answers, `source`, when given). Returns the report."""
    from contracts.store_url import open_store
    from service.db.tables import FineTuningJob
    from service.evaluation.examples import Example
    from service.evaluation.report import Scored, build_report
    from service.scheduler.evaluation import attach_report

    examples = [
        Example(i, i + 1, [{"role": "user", "content": q}], a) for i, (q, a) in enumerate(QA)
    ]
    tuned = [a for _, a in QA[:-1]] + ["I do not know."]
    with db(data_dir) as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None and job.fine_tuned_model is not None
        models = [
            Scored(job.base_model, "base", ["I do not know."] * len(QA)),
            Scored(job.fine_tuned_model, "fine_tuned", tuned, None, 0.42),
        ]
        if source is not None:
            models.append(Scored("ft:gpt-4o-mini-2024-07-18:acme::AbC123", "source", source))
        report = build_report(
            examples, models, data="validation_file", file=job.training_file,
            outliers=[{"line": 8, "loss": 3.25}], seconds=12.4,
        )  # fmt: skip
        attach_report(session, open_store(store_url), job, report)
        return report


GRADER = {"type": "string_check", "name": "exact", "operation": "eq",
          "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}  # fmt: skip


def reward(step: int) -> float:
    return round(min(1.0, 0.2 + step / 15), 4)


def create_rft_job(url: str, key: str, steps: int, data_dir: Path, store_url: str) -> str:
    """A running reinforcement job (a string_check grader, 10 prompts) with `steps` metrics
    events carrying reward means, a validation reward every `VALID_EVERY` steps, and a
    checkpoint at the last step."""
    from contracts.layout import ADAPTER
    from contracts.messages import StepMetrics
    from contracts.store_url import open_store
    from service.db.tables import FineTuningJob
    from service.fine_tuning import service as jobs
    from service.fine_tuning.status import JobStatus
    from service.models import lifecycle

    prompts = [{"messages": [{"role": "user", "content": f"{i} + {i}?"}], "answer": str(2 * i)}
               for i in range(10)]  # fmt: skip
    with api(url, key) as http:
        up = http.post(
            "/v1/files",
            files={"file": ("prompts.jsonl", "".join(json.dumps(p) + "\n" for p in prompts))},
            data={"purpose": "fine-tune"},
        )
        up.raise_for_status()
        method = {"type": "reinforcement", "reinforcement": {"grader": GRADER}}
        body = {"model": "whetstone-tiny", "training_file": up.json()["id"], "method": method}
        created = http.post("/v1/fine_tuning/jobs", json=body)
        created.raise_for_status()
        job_id = str(created.json()["id"])
    with db(data_dir) as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        jobs.transition(session, job, JobStatus.QUEUED)
        jobs.record_hyperparameters(job, {"n_epochs": 2, "batch_size": 1,
                                          "learning_rate_multiplier": 0.25,
                                          "compute_multiplier": 1.0, "eval_interval": 5,
                                          "eval_samples": 1})  # fmt: skip
        jobs.transition(session, job, JobStatus.RUNNING)
        for step in range(1, steps + 1):
            valid = reward(step) - 0.05 if step % VALID_EVERY == 0 else None
            jobs.add_metrics_event(session, job, step, steps, {
                "train_loss": 0.01, "train_reward_mean": reward(step),
                "valid_reward_mean": valid, "train_reward/exact": reward(step),
            })  # fmt: skip
        metrics = StepMetrics(train_loss=0.01, train_reward_mean=reward(steps),
                              valid_reward_mean=reward(steps) - 0.05)  # fmt: skip
        row = jobs.register_checkpoint(session, job, steps, metrics)
        name, adapter = row.fine_tuned_model_checkpoint, row.store_key + ADAPTER
        lifecycle.publish(session, open_store(store_url), job, name, "checkpoint", adapter)
    return job_id
