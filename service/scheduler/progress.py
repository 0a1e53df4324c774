"""The trainer's progress messages (docs/architecture.md, "Progress channel") -> job changes.

Every message from the live attempt renews its lease. The reply tells the trainer what to do
next: `continue`, or the job's `requested_action` (`cancel`, `pause`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import FineTuningJob, FineTuningJobEvent
from service.ids import now
from service.jobs import service as jobs
from service.jobs.status import JobStatus, RequestedAction
from service.models_store import publish_model
from service.scheduler.results import save_result_file
from trainer.layout import ADAPTER
from trainer.store import ObjectStore

log = logging.getLogger(__name__)
Action = Literal["continue", "cancel", "pause"]
METRIC_FIELDS = (
    "train_loss",
    "valid_loss",
    "full_valid_loss",
    "train_mean_token_accuracy",
    "valid_mean_token_accuracy",
    "full_valid_mean_token_accuracy",
)
LEVELS = {"info": "info", "warn": "warn", "warning": "warn", "error": "error"}
RATE_WINDOW = 20


def action_for(job: FineTuningJob) -> Action:
    """What the attempt must do: the requested action, or stop if the job has ended."""
    if job.requested_action == RequestedAction.CANCEL.value:
        return "cancel"
    if job.requested_action == RequestedAction.PAUSE.value:
        return "pause"
    status = JobStatus(job.status)
    if status is JobStatus.PAUSED:
        return "pause"
    if status.is_final and status is not JobStatus.SUCCEEDED:
        return "cancel"
    return "continue"


def handle_report(
    session: Session,
    store: ObjectStore,
    job: FineTuningJob,
    message: Mapping[str, Any],
    lease_seconds: float,
) -> Action:
    """Apply one message of the job's live attempt; the caller commits."""
    job.lease_expires_at = now() + int(lease_seconds)
    kind = message.get("type")
    running = job.status == JobStatus.RUNNING.value
    live = running or job.status == JobStatus.PAUSED.value  # a paused attempt winds down
    if kind == "metrics" and live:
        _metrics(session, job, message)
    elif kind == "checkpoint" and live:
        _checkpoint(session, store, job, message)
    elif kind == "log":
        level = LEVELS.get(str(message.get("level", "info")), "info")
        jobs.add_event(session, job, str(message.get("message", "")), level=level)  # type: ignore[arg-type]
    elif kind == "finished" and running:
        _finished(session, store, job, message)
    elif kind == "failed" and not JobStatus(job.status).is_final:
        jobs.mark_failed(
            session, job, str(message.get("code") or "training_failed"),
            str(message.get("message") or "The trainer failed."), message.get("param"),
        )  # fmt: skip
    return action_for(job)


def _metrics(session: Session, job: FineTuningJob, message: Mapping[str, Any]) -> None:
    step, total = int(message["step"]), int(message["total_steps"])
    values = {k: message.get(k) for k in METRIC_FIELDS}
    _estimate_finish(session, job, step, total)
    jobs.add_metrics_event(session, job, step, total, values)


def _estimate_finish(session: Session, job: FineTuningJob, step: int, total: int) -> None:
    """From the steps per second over the last few metrics events of this job."""
    recent = session.scalars(
        select(FineTuningJobEvent)
        .where(FineTuningJobEvent.job_id == job.id, FineTuningJobEvent.type == "metrics")
        .order_by(FineTuningJobEvent.seq.desc())
        .limit(RATE_WINDOW)
    ).all()
    oldest = next((e for e in reversed(recent) if e.data and e.data.get("step", step) < step), None)
    if oldest is None or oldest.data is None:
        return
    seconds = now() - oldest.created_at
    steps = step - int(oldest.data["step"])
    if seconds >= 1 and steps > 0:
        job.estimated_finish = now() + int((total - step) * seconds / steps)


def _checkpoint(
    session: Session, store: ObjectStore, job: FineTuningJob, message: Mapping[str, Any]
) -> None:
    step = int(message["step"])
    key = str(message["key"])
    checkpoint = jobs.register_checkpoint(session, job, step, message.get("metrics") or {}, key)
    adapter = checkpoint.store_key.rstrip("/") + "/" + ADAPTER
    publish_model(store, checkpoint.fine_tuned_model_checkpoint, job.base_model, adapter)
    job.resume_from = checkpoint.store_key


def _finished(
    session: Session, store: ObjectStore, job: FineTuningJob, message: Mapping[str, Any]
) -> None:
    adapter = str(message["adapter_key"])
    result = save_result_file(session, store, job, str(message["metrics_key"]))
    jobs.mark_succeeded(
        session,
        job,
        trained_tokens=int(message.get("trained_tokens") or 0),
        result_files=[result.id] if result else [],
        adapter_prefix=adapter,
    )
    publish_model(store, job.output_model, job.base_model, adapter)
