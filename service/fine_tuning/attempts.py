"""A job's attempts: the one owner of the scheduler's columns on `fine_tuning_jobs`.

An attempt is one run of the trainer for a job. Its life, and the functions that write it
(each one transaction's worth of change; none commits: the scheduler's task or the request
commits, as in `service.fine_tuning.service`):

- `take` (the claim's guard: `queued` at attempt `n` becomes attempt `n + 1`, holding the hash
  of a fresh token), then `start` (the JobSpec, the start lease, `running`). A launch the
  executor refuses is `unclaim`ed (not counted); a start that raised is `start_failed` (it
  counts), then retried (`retry_later`) or failed.
- `record_handle` once the executor runs it; `renew` on every progress message;
  `lease_expired` tells a lost attempt.
- `end` when it is over; a pause it stopped for as asked does not use up one of the job's
  attempts (`max_attempts` + 1). Then `requeue` (counted or not), `retry_or_fail`, or `fail`.

Columns: `attempt` (the number of the latest attempt; while a job is `validating_files`, or
`queued` after a failed start, the count of tries), `max_attempts`, `attempt_token_hash`
(only the hash of the attempt's bearer token), `lease_expires_at` (the attempt's lease, or the
time of the next try), `executor_handle`, `requested_action` (`none|cancel|pause`, set by the
API's cancel and pause, reset by `end`).
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from contracts import layout
from service.db.tables import FineTuningJob
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.status import JobStatus, RequestedAction
from service.hashing import secret_hash, secret_matches
from service.ids import now

# --- The attempt's bearer token ------------------------------------------------------------


def new_token() -> tuple[str, str]:
    """A fresh per-attempt bearer token and the hash that is all the database keeps."""
    token = "wsat-" + secrets.token_urlsafe(32)
    return token, secret_hash(token)


def is_current(job: FineTuningJob, token: str) -> bool:
    """Whether `token` is the bearer token of the job's live attempt."""
    return secret_matches(token, job.attempt_token_hash)


# --- Starting ------------------------------------------------------------------------------


def take(session: Session, job: FineTuningJob, token_hash: str) -> int | None:
    """Take the `queued` job for its next attempt, under `token_hash`; returns the attempt's
    number, or None when the row is no longer `queued` at `job.attempt` (another scheduler
    took it, or `job` is stale). Refreshes `job`."""
    if not repo.take_attempt(session, job.id, job.attempt, token_hash):
        return None
    session.refresh(job)
    return job.attempt


def start(session: Session, job: FineTuningJob, spec: str, start_seconds: float) -> None:
    """The taken attempt starts: its JobSpec (JSON, verbatim), a lease of `start_seconds` to
    load its model, and `running`: `Fine-tuning job started`, or for a later attempt, at warn
    level, where it resumes (`Resuming from checkpoint at step N (attempt 2 of 3)`)."""
    job.spec = spec
    job.lease_expires_at = now() + int(start_seconds)
    number = job.attempt
    if number == 1 and not job.resume_from:
        jobs.transition(session, job, JobStatus.RUNNING)
        return
    of = f"(attempt {number} of {job.max_attempts})"
    if job.resume_from:
        message = f"Resuming from checkpoint at step {layout.step_of(job.resume_from)} {of}"
    else:
        message = f"Starting again from the beginning, no checkpoint was saved yet {of}"
    jobs.transition(session, job, JobStatus.RUNNING, message, level="warn")


def record_handle(session: Session, job_id: str, number: int, handle: str) -> None:
    """The executor runs attempt `number` as `handle` (nothing if the job moved on)."""
    repo.set_executor_handle(session, job_id, number, handle)


def unclaim(session: Session, job: FineTuningJob, message: str) -> None:
    """The executor refused to launch the attempt: back to `queued`, the attempt not counted."""
    end(job)
    requeue(session, job, message, counts_attempt=False)


def start_failed(job: FineTuningJob, number: int) -> None:
    """Taking or launching attempt `number` raised: it counts, and holds no token or lease."""
    job.attempt = max(job.attempt, number)
    job.attempt_token_hash = None
    job.lease_expires_at = None


# --- Running -------------------------------------------------------------------------------


def renew(job: FineTuningJob, seconds: float) -> None:
    """A message came from the attempt: its lease runs `seconds` from now."""
    job.lease_expires_at = now() + int(seconds)


def lease_expired(job: FineTuningJob) -> bool:
    return job.lease_expires_at is not None and job.lease_expires_at < now()


# --- Ending --------------------------------------------------------------------------------


def end(job: FineTuningJob, *, stopped_as_asked: bool = False) -> None:
    """The attempt is over: its handle, lease, token and requested action stop counting.

    `stopped_as_asked`: it stopped because it was told to (exit 0, or the shutdown's
    SIGTERM); if that was a pause, resuming is not a new try, so the pause does not use up one
    of the job's attempts (`max_attempts` + 1). Calling it again changes nothing more."""
    paused = job.requested_action == RequestedAction.PAUSE.value
    job.executor_handle = None
    job.attempt_token_hash = None
    job.lease_expires_at = None
    job.requested_action = RequestedAction.NONE.value
    if paused and stopped_as_asked:
        job.max_attempts += 1


def requeue(session: Session, job: FineTuningJob, message: str, *, counts_attempt: bool) -> None:
    """The ended attempt's `running` job goes back to `queued` (it resumes from `resume_from`,
    its last checkpoint); `counts_attempt=False` gives the attempt back (nothing failed)."""
    if not counts_attempt:
        job.attempt -= 1
    jobs.transition(session, job, JobStatus.QUEUED, message, level="warn")


def retry_or_fail(session: Session, job: FineTuningJob, reason: str) -> None:
    """The attempt failed because of `reason`: `queued` again to resume from the last
    checkpoint, or `failed` (`training_failed`) once `max_attempts` are used up."""
    end(job)
    if job.attempt >= job.max_attempts:
        fail(
            session, job, "training_failed",
            f"Training failed after {job.attempt} attempts; the last one ended because "
            f"{reason}.",
        )  # fmt: skip
        return
    requeue(
        session, job,
        f"Training attempt {job.attempt} ended because {reason}; the job is queued to resume",
        counts_attempt=True,
    )  # fmt: skip


def fail(
    session: Session, job: FineTuningJob, code: str, message: str, param: str | None = None
) -> None:
    """Fail the job (`service.mark_failed`); whatever attempt or retry it held stops counting."""
    end(job)
    jobs.mark_failed(session, job, code, message, param)


# --- Tries of a stage (validating, starting) after a transient error -----------------------


def retry_later(session: Session, job: FineTuningJob, tries: int, delay: int, message: str) -> None:
    """After `tries` failed tries, the next one in `delay` seconds: `attempt` counts the tries
    and `lease_expires_at` holds the time of the next. A `running` job goes back to `queued`
    (`message` is the transition's event), any other keeps its status (`message` a `warn` event)."""
    job.attempt = tries
    job.lease_expires_at = now() + delay
    if job.status == JobStatus.RUNNING.value:
        jobs.transition(session, job, JobStatus.QUEUED, message, level="warn")
    else:
        jobs.add_event(session, job, message, level="warn")


def queue_validated(session: Session, job: FineTuningJob, max_attempts: int) -> None:
    """The files are valid: `queued` with `max_attempts` attempts, none used (validation's
    tries are not training attempts)."""
    job.max_attempts = max_attempts
    job.attempt, job.lease_expires_at = 0, None
    jobs.transition(session, job, JobStatus.QUEUED)
