"""The domain functions that change a job: the API's actions (cancel, pause, resume) and
what the scheduler calls as a job progresses. Each writes its events; none commits (the
request or the scheduler's task commits).

Scheduler's view, in order: `transition(job, QUEUED)` once files are valid (after setting
`record_hyperparameters`), `transition(job, RUNNING)` when an
attempt starts, `add_metrics_event` as steps go, `register_checkpoint` for each checkpoint
(then `service.models.lifecycle.publish` for the checkpoint's model), and finally
`mark_succeeded` (then `lifecycle.publish` for the final model) or `mark_failed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from contracts.layout import checkpoint_prefix
from contracts.messages import StepMetrics
from contracts.names import checkpoint_model_name
from service import metrics
from service.db.tables import FineTuningJob, FineTuningJobCheckpoint
from service.db.tables import FineTuningJobEvent as EventRow
from service.errors import InvalidRequest
from service.fine_tuning import repository as repo
from service.fine_tuning.hyperparameters import FineTuneMethod, with_resolved
from service.fine_tuning.status import (
    InvalidTransition,
    JobStatus,
    RequestedAction,
    check_transition,
)
from service.ids import new_id, now
from service.webhooks import outbox

log = logging.getLogger("whetstone.events")
Level = Literal["info", "warn", "error"]
EventType = Literal["message", "metrics"]


_LOG_LEVELS = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def status_of(job: FineTuningJob) -> JobStatus:
    return JobStatus(job.status)


def add_event(
    session: Session,
    job: FineTuningJob,
    message: str,
    *,
    level: Level = "info",
    type: EventType = "message",
    data: Mapping[str, Any] | None = None,
) -> EventRow:
    """Append an event to the job's log (listed newest first by the API); log it too, one
    readable line (`whetstone up` prints them)."""
    log.log(_LOG_LEVELS[level], "%s %s", job.id, message)
    event = EventRow(
        id=new_id("ftevent"),
        job_id=job.id,
        created_at=now(),
        level=level,
        type=type,
        message=message,
        data=dict(data) if data is not None else None,
    )
    return repo.add_event(session, event)


def transition(
    session: Session,
    job: FineTuningJob,
    new_status: JobStatus,
    message: str | None = None,
    *,
    level: Level = "info",
) -> EventRow:
    """Move the job to `new_status` if the table allows it (else `InvalidTransition`, a 400)
    and write the event: `message`, or the transition's own message. A final status also
    writes the webhook deliveries it owes (`service.webhooks.outbox`), in the same
    transaction.

    A compare-and-set on both databases: the row changes only if its status is still the one
    this session read (`UPDATE ... WHERE status = :expected`). Two requests that read the same
    status (a cancel and a pause sent together; SQLite has no row locks) cannot both pass: the
    later one rereads the row and is checked again from what it is now (a cancel after a pause
    that won still cancels; a pause after a cancel is `InvalidTransition`).
    """
    for _ in range(3):
        expected = status_of(job)
        default = check_transition(job.id, expected, new_status)
        changes: dict[str, Any] = {"status": new_status.value, "updated_at": now()}
        if new_status.is_final:
            changes |= {"finished_at": changes["updated_at"], "estimated_finish": None}
        if repo.swap_status(session, job.id, expected.value, changes):
            break
        session.refresh(job, ["status"])
    else:
        raise InvalidTransition(job.id, status_of(job), new_status)
    metrics.job_transition(job, expected, new_status, time.time())
    for name, value in changes.items():
        set_committed_value(job, name, value)
    if new_status.is_final:
        outbox.enqueue(session, job, new_status)
    return add_event(session, job, message or default, level=level)


_MESSAGE_METRICS = (
    ("train_loss", "training loss"),
    ("valid_loss", "validation loss"),
    ("train_reward_mean", "train reward mean"),
    ("valid_reward_mean", "validation reward mean"),
)


def add_metrics_event(
    session: Session, job: FineTuningJob, step: int, total_steps: int, metrics: Mapping[str, Any]
) -> EventRow:
    """`Step N/M: training loss=...` with the numbers in `data`, as OpenAI's metrics events;
    a reinforcement job's says its reward means too (`train_reward_mean`, `valid_reward_mean`,
    and `train_reward/<name>` per sub-grader in `data`)."""
    parts = [
        f"{label}={metrics[name]:.4f}"
        for name, label in _MESSAGE_METRICS
        if metrics.get(name) is not None
    ]
    message = f"Step {step}/{total_steps}: " + ", ".join(parts)
    data = {"step": step, "total_steps": total_steps, **metrics}
    return add_event(session, job, message, type="metrics", data=data)


def record_hyperparameters(job: FineTuningJob, values: Mapping[str, Any]) -> FineTuneMethod:
    """Replace the `auto` hyperparameters of the job's method by the resolved `values`
    (the user's own values stay); the job reports these numbers from now on."""
    method = with_resolved(FineTuneMethod.model_validate(job.method), values)
    job.method = method.model_dump(mode="json")
    return method


def register_checkpoint(
    session: Session,
    job: FineTuningJob,
    step: int,
    metrics: StepMetrics,
    key: str | None = None,
) -> FineTuningJobCheckpoint:
    """Record a completed checkpoint (`ftckpt-...`) of the model `{model}:ckpt-step-{N}`
    (the model itself appears through `service.models.lifecycle.publish`).

    `key` is the checkpoint's folder in the store (default: the documented layout). The
    same step registered twice (a retried report) returns the existing checkpoint.
    """
    existing = repo.get_checkpoint(session, job.id, step)
    if existing is not None:
        return existing
    key = key or checkpoint_prefix(job.id, step)
    name = checkpoint_model_name(job.output_model, step)
    values = {k: v for k, v in metrics.metric_values().items() if v is not None}
    row = repo.add_checkpoint(
        session,
        FineTuningJobCheckpoint(
            id=new_id("ftckpt"),
            job_id=job.id,
            created_at=now(),
            step_number=step,
            fine_tuned_model_checkpoint=name,
            metrics={"step": step, **values},
            store_key=key,
        ),
    )
    add_event(session, job, f"Checkpoint created at step {step} with Snapshot ID: {name}")
    return row


def mark_succeeded(
    session: Session,
    job: FineTuningJob,
    *,
    trained_tokens: int,
    result_files: Sequence[str] = (),
    fine_tuned_model: str | None = None,
) -> None:
    """Finish the job with its final model (default name: the job's `ft:...` name); the
    model itself is `service.models.lifecycle.publish`'s."""
    name = fine_tuned_model or job.output_model
    job.fine_tuned_model = name
    job.trained_tokens = trained_tokens
    job.result_files = list(result_files)
    add_event(session, job, f"New fine-tuned model created: {name}")
    transition(session, job, JobStatus.SUCCEEDED)


def mark_failed(
    session: Session, job: FineTuningJob, code: str, message: str, param: str | None = None
) -> EventRow:
    """Fail the job with OpenAI's `error` fields; the event carries the message."""
    job.error_code, job.error_message, job.error_param = code, message, param
    return transition(session, job, JobStatus.FAILED, message, level="error")


# --- The API's actions ---------------------------------------------------------------------


def cancel(session: Session, job: FineTuningJob) -> None:
    """Any status that is not final -> `cancelled`; a live attempt is told to stop."""
    if status_of(job).is_final:
        raise InvalidRequest(
            f"Fine-tuning job {job.id} has already finished ({job.status}): it cannot be "
            "cancelled.",
            param=None,
            code="invalid_job_status",
        )
    had_attempt = status_of(job) in (JobStatus.RUNNING, JobStatus.PAUSING, JobStatus.PAUSED)
    transition(session, job, JobStatus.CANCELLED)
    if had_attempt or job.executor_handle:
        job.requested_action = RequestedAction.CANCEL.value


def pause(session: Session, job: FineTuningJob) -> None:
    """`running` -> `pausing`; the attempt checkpoints and exits when told, and the job is
    `paused` once the attempt has ended (`paused_if_pausing`)."""
    _only_from(job, JobStatus.RUNNING, "paused")
    transition(session, job, JobStatus.PAUSING)
    job.requested_action = RequestedAction.PAUSE.value


def paused_if_pausing(session: Session, job: FineTuningJob) -> bool:
    """The job's attempt has ended (however it ended): a `pausing` job is now `paused`, and
    resumes from its last checkpoint. True when it was pausing."""
    if status_of(job) is not JobStatus.PAUSING:
        return False
    transition(session, job, JobStatus.PAUSED)
    return True


def resume(session: Session, job: FineTuningJob) -> None:
    """`paused` -> `queued`; the scheduler starts a new attempt from the last checkpoint."""
    _only_from(job, JobStatus.PAUSED, "resumed")
    transition(
        session, job, JobStatus.QUEUED, "Fine-tuning job resumed, moving job to queued state"
    )


def _only_from(job: FineTuningJob, required: JobStatus, verb: str) -> None:
    if status_of(job) is not required:
        raise InvalidRequest(
            f"Fine-tuning job {job.id} is {job.status}: only a {required.value} job can be {verb}.",
            param=None,
            code="invalid_job_status",
        )
