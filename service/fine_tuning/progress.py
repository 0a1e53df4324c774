"""The trainer's progress messages (docs/architecture.md, "Progress channel") -> job changes.

Every message from the live attempt renews its lease. A message applied twice (the trainer
sends a report again when the reply to it was lost) changes nothing the second time: a
checkpoint is registered once per step, a metrics event equal to the latest one is not
added again, a second `finished` or `failed` finds the job already ended.
The reply tells the trainer what to do next: `continue`, or the job's `requested_action`
(`cancel`, `pause`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from contracts import layout
from contracts.layout import ADAPTER
from contracts.messages import Action, Checkpoint, Failed, Finished, Log, Message, Metrics
from contracts.store import ObjectStore
from service import metrics
from service.db.tables import FineTuningJob, FineTuningJobEvent
from service.errors import InvalidRequest
from service.fine_tuning import attempts
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.results import save_result_file
from service.fine_tuning.status import JobStatus, RequestedAction
from service.ids import now
from service.models import lifecycle

if TYPE_CHECKING:
    from service.models.access import ChatAccess
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
    if status in (JobStatus.PAUSING, JobStatus.PAUSED):
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
    access: ChatAccess | None = None,
) -> Action:
    """Apply one message of the job's live attempt; the caller commits. `started` and
    `heartbeat` only renew the lease, as every message does. With `adapters`, a final model
    is warm-started once the caller commits, and checkpoints pruned by the trainer are
    unloaded (`access`, this process's chat cache, forgets them). A message naming an object
    outside the job's own folder is refused (`InvalidRequest`) before anything changes."""
    _check_keys(job, message)
    attempts.renew(job, lease_seconds)
    # A pausing attempt winds down: its checkpoint counts, and so does a `finished` that
    # crossed the pause (the job then succeeds).
    running = job.status in (JobStatus.RUNNING.value, JobStatus.PAUSING.value)
    live = running or job.status == JobStatus.PAUSED.value
    match message:
        case Metrics() if live:
            _metrics(session, job, message)
        case Checkpoint() if live:
            _checkpoint(session, store, job, message, adapters, access)
        case Log(level=level, message=text):
            jobs.add_event(session, job, text, level=LEVELS.get(level, "info"))  # type: ignore[arg-type]
        case Finished() if running:
            _finished(session, store, job, message, adapters)
        case Failed(code=code, message=text, param=param) if not JobStatus(job.status).is_final:
            jobs.mark_failed(
                session, job, code or "training_failed", text or "The trainer failed.", param
            )
    return action_for(job)


def _check_keys(job: FineTuningJob, message: Message) -> None:
    """The store keys a trainer reports must be its own job's (`jobs/{job_id}/...`): a
    trainer (or whoever holds its token) cannot publish another job's or tenant's objects."""
    match message:
        case Checkpoint(key=key):
            named = {"key": key}
        case Finished(adapter_key=adapter_key, metrics_key=metrics_key):
            named = {"adapter_key": adapter_key, "metrics_key": metrics_key}
        case _:
            return
    for param, key in named.items():
        if not layout.is_job_key(job.id, key):
            raise InvalidRequest(
                f"The {message.type} message's {param} {key!r} is not under this job's "
                f"folder {layout.job_prefix(job.id)!r}; nothing was changed.",
                param=param,
                code="invalid_object_key",
            )


def _metrics(session: Session, job: FineTuningJob, message: Metrics) -> None:
    """A metrics event, unless the latest one is this very message (a report the trainer
    sent again because the reply to it was lost)."""
    if message.tokens_per_second is not None and job.status == JobStatus.RUNNING.value:
        metrics.trainer_throughput(job, message.tokens_per_second)
    recent = repo.recent_metrics_events(session, job.id, RATE_WINDOW)
    data = message.event_data()
    if recent and recent[0].data == {"step": message.step, "total_steps": message.total_steps,
                                     **data}:  # fmt: skip
        return
    _estimate_finish(job, recent, message.step, message.total_steps)
    jobs.add_metrics_event(session, job, message.step, message.total_steps, data)


def _estimate_finish(
    job: FineTuningJob, recent: Sequence[FineTuningJobEvent], step: int, total: int
) -> None:
    """From the steps per second over the last few metrics events of this job (newest first)."""
    oldest = next((e for e in reversed(recent) if e.data and e.data.get("step", step) < step), None)
    if oldest is None or oldest.data is None:
        return
    seconds = now() - oldest.created_at
    steps = step - int(oldest.data["step"])
    if seconds >= 1 and steps > 0:
        job.estimated_finish = now() + int((total - step) * seconds / steps)


def _checkpoint(
    session: Session,
    store: ObjectStore,
    job: FineTuningJob,
    message: Checkpoint,
    adapters: AdapterControl | None,
    access: ChatAccess | None,
) -> None:
    """Register and publish the checkpoint, then retire the checkpoint models of the steps
    the trainer's retention deleted from the store (`kept_steps`)."""
    checkpoint = jobs.register_checkpoint(session, job, message.step, message.metrics, message.key)
    adapter = checkpoint.store_key.rstrip("/") + "/" + ADAPTER
    name = checkpoint.fine_tuned_model_checkpoint
    lifecycle.publish(session, store, job, name, "checkpoint", adapter)
    job.resume_from = checkpoint.store_key
    if message.kept_steps is not None:
        kept = set(message.kept_steps) | {message.step}
        lifecycle.retire_checkpoints(session, store, job, kept, access=access, adapters=adapters)


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
