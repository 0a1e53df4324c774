"""The trainer's progress messages (docs/architecture.md, "Progress channel") -> job changes.

Every message from the live attempt renews its lease. The reply tells the trainer what to do
next: `continue`, or the job's `requested_action` (`cancel`, `pause`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.layout import ADAPTER
from contracts.messages import Action, Checkpoint, Failed, Finished, Log, Message, Metrics
from contracts.store import ObjectStore
from service import metrics
from service.db.tables import FineTuningJob, FineTuningJobEvent
from service.ids import now
from service.jobs import attempts
from service.jobs import service as jobs
from service.jobs.status import JobStatus, RequestedAction
from service.models import lifecycle
from service.scheduler.results import save_result_file

if TYPE_CHECKING:
    from service.models.warm_start import AdapterControl

log = logging.getLogger(__name__)
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
    message: Message,
    lease_seconds: float,
    adapters: AdapterControl | None = None,
) -> Action:
    """Apply one message of the job's live attempt; the caller commits. `started` and
    `heartbeat` only renew the lease, as every message does. With `adapters`, a final model
    is warm-started once the caller commits."""
    attempts.renew(job, lease_seconds)
    running = job.status == JobStatus.RUNNING.value
    live = running or job.status == JobStatus.PAUSED.value  # a paused attempt winds down
    match message:
        case Metrics() if live:
            _metrics(session, job, message)
        case Checkpoint() if live:
            _checkpoint(session, store, job, message)
        case Log(level=level, message=text):
            jobs.add_event(session, job, text, level=LEVELS.get(level, "info"))  # type: ignore[arg-type]
        case Finished() if running:
            _finished(session, store, job, message, adapters)
        case Failed(code=code, message=text, param=param) if not JobStatus(job.status).is_final:
            jobs.mark_failed(
                session, job, code or "training_failed", text or "The trainer failed.", param
            )
    return action_for(job)


def _metrics(session: Session, job: FineTuningJob, message: Metrics) -> None:
    if message.tokens_per_second is not None and job.status == JobStatus.RUNNING.value:
        metrics.trainer_throughput(job, message.tokens_per_second)
    _estimate_finish(session, job, message.step, message.total_steps)
    jobs.add_metrics_event(session, job, message.step, message.total_steps, message.event_data())


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
    session: Session, store: ObjectStore, job: FineTuningJob, message: Checkpoint
) -> None:
    checkpoint = jobs.register_checkpoint(session, job, message.step, message.metrics, message.key)
    adapter = checkpoint.store_key.rstrip("/") + "/" + ADAPTER
    name = checkpoint.fine_tuned_model_checkpoint
    lifecycle.publish(session, store, job, name, "checkpoint", adapter)
    job.resume_from = checkpoint.store_key


def _finished(
    session: Session,
    store: ObjectStore,
    job: FineTuningJob,
    message: Finished,
    adapters: AdapterControl | None,
) -> None:
    result = save_result_file(session, store, job, message.metrics_key)
    jobs.mark_succeeded(
        session,
        job,
        trained_tokens=message.trained_tokens,
        result_files=[result.id] if result else [],
    )
    model = job.output_model
    lifecycle.publish(session, store, job, model, "final", message.adapter_key, adapters=adapters)
