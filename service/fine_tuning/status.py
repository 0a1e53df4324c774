"""The job state machine: the statuses and the one table of allowed transitions.

```
validating_files -> queued -> running -> succeeded | failed | cancelled
                                running -> pausing -> paused -> queued   (pause, then resume)
                                running -> queued             (a retryable attempt ended)
any status that is not final -> cancelled | failed
```

Every transition goes through `service.fine_tuning.service.transition`, which checks this table and
writes an event with the transition's message (OpenAI's words where OpenAI has them).
"""

from __future__ import annotations

from enum import StrEnum

from service.errors import InvalidRequest


class JobStatus(StrEnum):
    """What a fine-tuning job is doing. The value is what the API reports."""

    VALIDATING_FILES = "validating_files"
    """Just created: the scheduler counts tokens and checks the files against the base model."""
    QUEUED = "queued"
    """Files are valid; waiting for a trainer slot (also after a resume or a retryable crash)."""
    RUNNING = "running"
    """An attempt is training (the scheduler launched it through an executor)."""
    PAUSING = "pausing"
    """The user asked for a pause; the attempt is saving a checkpoint and stopping (OpenAI's
    `pausing`). Once the attempt has ended the job is `paused`."""
    PAUSED = "paused"
    """Stopped at a checkpoint on the user's request; `resume` queues it again (OpenAI's and
    Azure OpenAI's `paused`)."""
    SUCCEEDED = "succeeded"
    """Final: the fine-tuned model exists (`fine_tuned_model`)."""
    FAILED = "failed"
    """Final: `error` says why (bad data, too many crashed attempts, ...)."""
    CANCELLED = "cancelled"
    """Final: cancelled by the user; any running attempt is told to stop."""

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

S = JobStatus

# (from, to) -> the message of the event written on that transition. Nothing else is allowed.
TRANSITIONS: dict[tuple[JobStatus, JobStatus], str] = {
    (S.VALIDATING_FILES, S.QUEUED): "Files validated, moving job to queued state",
    (S.VALIDATING_FILES, S.FAILED): "Fine-tuning job failed",
    (S.VALIDATING_FILES, S.CANCELLED): "Fine-tuning job cancelled",
    (S.QUEUED, S.RUNNING): "Fine-tuning job started",
    (S.QUEUED, S.FAILED): "Fine-tuning job failed",
    (S.QUEUED, S.CANCELLED): "Fine-tuning job cancelled",
    (S.RUNNING, S.SUCCEEDED): "The job has successfully completed",
    (S.RUNNING, S.FAILED): "Fine-tuning job failed",
    (S.RUNNING, S.CANCELLED): "Fine-tuning job cancelled",
    (S.RUNNING, S.PAUSING): "Pausing fine-tuning job: it stops at its next checkpoint",
    (S.PAUSING, S.PAUSED): "Fine-tuning job paused",
    (S.PAUSING, S.SUCCEEDED): "The job has successfully completed",
    (S.PAUSING, S.FAILED): "Fine-tuning job failed",
    (S.PAUSING, S.CANCELLED): "Fine-tuning job cancelled",
    (S.RUNNING, S.QUEUED): "Training attempt ended early, moving job to queued state to retry",
    (S.PAUSED, S.QUEUED): "Fine-tuning job resumed, moving job to queued state",
    (S.PAUSED, S.FAILED): "Fine-tuning job failed",
    (S.PAUSED, S.CANCELLED): "Fine-tuning job cancelled",
}


class InvalidTransition(InvalidRequest):
    """A status change the table does not allow; the API answers it with 400."""

    def __init__(self, job_id: str, current: JobStatus, target: JobStatus) -> None:
        super().__init__(
            f"Fine-tuning job {job_id} is {current.value} and cannot become {target.value}.",
            param=None,
            code="invalid_job_status",
        )
        self.current = current
        self.target = target


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return (current, target) in TRANSITIONS


def check_transition(job_id: str, current: JobStatus, target: JobStatus) -> str:
    """The event message of `current -> target`; raises `InvalidTransition` if not allowed."""
    message = TRANSITIONS.get((current, target))
    if message is None:
        raise InvalidTransition(job_id, current, target)
    return message


class RequestedAction(StrEnum):
    """What the scheduler must tell a job's live attempt (the answer to its progress posts).

    Set by the API when a user cancels or pauses a job whose attempt may still run; the
    scheduler resets it to `none` once that attempt has ended. A queued job whose action is
    not `none` still has an attempt winding down and must not be claimed yet.
    """

    NONE = "none"
    CANCEL = "cancel"
    PAUSE = "pause"
