"""Watching attempts: leases, exits, cancels, and re-adoption after a restart.

Each round looks at every job holding an attempt (an executor handle, or `running` without
one yet) and asks the executor how the attempt is:

- still running: fine while its lease holds (every progress message renews it). Without a
  message for `scheduler_lease_seconds` it is declared lost and killed. A cancelled job's
  attempt is killed at once (SIGTERM, then SIGKILL after the executor's grace period).
- ended: exit 0 after a `finished` report (job `succeeded`), a cancel or a pause simply ends
  the attempt (a `pausing` job is `paused` once its attempt has ended, however it ended);
  exit 2 fails the job for good; any other exit, a lost attempt, or exit 0 of a job still
  `running` is retried from the job's last checkpoint while attempts remain, then the job
  fails with the reason. A pause does not use up one of the job's attempts.

Handles live in the database, so a restarted scheduler re-adopts the attempts of an earlier
one (the executor polls them by handle); attempts the executor runs that no job holds are
killed.

Each job is watched in its own transaction. An `ExecutorError` (the backend cannot be asked
now) changes nothing; any other exception rolls back that job's changes and the next job
goes on. A job whose watch keeps failing is handled once its lease has run out: its attempt
is killed and ended, and a `running` job is retried (or fails when out of attempts), so no
attempt holds a slot for ever.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from service.db.tables import FineTuningJob
from service.errors import describe
from service.executors import AttemptState, ExecutorError, Outcome
from service.fine_tuning import attempts
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.status import JobStatus
from service.logs import log_context
from service.scheduler.context import SchedulerContext

log = logging.getLogger(__name__)


def watch_attempts(ctx: SchedulerContext) -> None:
    """One pass over every job that holds an attempt."""
    with ctx.sessions() as session:
        for job in repo.jobs_holding_attempts(session, skip_locked=ctx.on_postgres):
            with log_context(job=job.id, project_id=job.project_id):
                _watch_one(ctx, session, job)


def _watch_one(ctx: SchedulerContext, session: Session, job: FineTuningJob) -> None:
    """One job in its own transaction; a failed watch is recorded in another one."""
    job_id = job.id
    try:
        _watch(ctx, session, job)
        session.commit()
        return
    except ExecutorError as e:  # the backend cannot be asked now: not a loss
        log.warning("cannot poll the attempt of %s: %s", job_id, e)
        session.rollback()
        return
    except Exception as e:
        session.rollback()
        log.error("watching the attempt of %s failed", job_id, exc_info=e)
        error = e
    try:
        _watch_failed(ctx, session, job_id, error)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("cannot end the attempt of %s", job_id)


def _watch_failed(ctx: SchedulerContext, session: Session, job_id: str, error: Exception) -> None:
    """`_watch` raised: once the lease has run out, end the attempt as a lost one."""
    job = repo.find_job(session, job_id)
    if job is None or not attempts.lease_expired(job):
        return
    if job.executor_handle is not None:
        _kill_once(ctx, job.executor_handle)
    attempts.end(job)
    if job.status == JobStatus.RUNNING.value:
        attempts.retry_or_fail(
            session, job, f"the scheduler could not watch it ({describe(error)})"
        )
    jobs.paused_if_pausing(session, job)


def _watch(ctx: SchedulerContext, session: Session, job: FineTuningJob) -> None:
    status = JobStatus(job.status)
    if job.executor_handle is None:
        if status is JobStatus.RUNNING and attempts.lease_expired(job):
            attempts.retry_or_fail(session, job, "the trainer was never started")
        elif status is JobStatus.PAUSING and attempts.lease_expired(job):
            attempts.end(job)
            jobs.paused_if_pausing(session, job)
        return
    state = ctx.executor.poll(job.executor_handle)
    if state.outcome is Outcome.RUNNING:
        if status is JobStatus.CANCELLED or (status.is_final and attempts.lease_expired(job)):
            _kill_once(ctx, job.executor_handle)
        elif attempts.lease_expired(job):
            log.warning("attempt %d of %s lost its lease; killing it", job.attempt, job.id)
            _kill_once(ctx, job.executor_handle)
            attempts.end(job)
            if status is JobStatus.RUNNING:
                seconds = int(ctx.settings.scheduler_lease_seconds)
                attempts.retry_or_fail(session, job, f"no message from the trainer for {seconds} s")
            jobs.paused_if_pausing(session, job)
        return
    _attempt_ended(session, job, status, state)


def _attempt_ended(
    session: Session, job: FineTuningJob, status: JobStatus, state: AttemptState
) -> None:
    log.info("%s: attempt %d ended (%s), the job is %s", job.id, job.attempt, state.outcome,
             status.value)  # fmt: skip
    attempts.end(job, stopped_as_asked=state.outcome is Outcome.SUCCEEDED)
    if jobs.paused_if_pausing(session, job):
        return  # stopped for the pause, or crashed on the way: resumes from its checkpoint
    if status is not JobStatus.RUNNING:
        return  # succeeded, failed or cancelled by a report or the user; paused: resumable
    if state.outcome is Outcome.FAILED and not state.retryable:
        attempts.fail(
            session, job, "training_failed",
            f"The trainer refused the job ({state.reason}); see the job's events.",
        )  # fmt: skip
        return
    reason = "it stopped before finishing" if state.outcome is Outcome.SUCCEEDED else state.reason
    attempts.retry_or_fail(session, job, reason)


def _kill_once(ctx: SchedulerContext, handle: str) -> None:
    if handle not in ctx.killed:
        ctx.killed.add(handle)
        ctx.executor.kill(handle)


def reap_orphans(ctx: SchedulerContext) -> list[str]:
    """Kill attempts the executor runs that no job holds any more (after a restart)."""
    live = ctx.executor.running()
    if not live:
        return []
    with ctx.sessions() as session:
        held = repo.held_attempts(session)
    orphans = [a.handle for a in live if (a.job_id, a.number) not in held]
    for handle in orphans:
        log.warning("killing attempt %s: no job holds it", handle)
        _kill_once(ctx, handle)
    return orphans
