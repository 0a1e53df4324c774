"""Stopping the stack (`whetstone up`, Ctrl-C) with jobs running: each attempt is asked to
stop (SIGTERM: the trainer saves a checkpoint, registers it and exits) while the API still
answers, and its job goes back to the queue, so the next start resumes it from that
checkpoint. The attempt is not counted against the job's attempts: nothing failed."""

from __future__ import annotations

import logging
import time

from service.executors import Outcome
from service.fine_tuning import attempts
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.status import JobStatus
from service.scheduler.context import SchedulerContext

log = logging.getLogger(__name__)
EXTRA_WAIT_SECONDS = 10.0  # beyond the executor's own grace period before SIGKILL


def stop_attempts(ctx: SchedulerContext, grace_seconds: float) -> list[str]:
    """End every attempt the executor runs and requeue its job; returns the job ids.

    Call it once the scheduler's loop has stopped: a running loop would see the attempts
    end and relaunch them."""
    live = ctx.executor.running()
    for attempt in live:
        log.info("stopping the trainer of %s (attempt %d)", attempt.job_id, attempt.number)
        ctx.executor.kill(attempt.handle)
    deadline = time.monotonic() + grace_seconds + EXTRA_WAIT_SECONDS
    pending = {a.handle for a in live}
    while pending and time.monotonic() < deadline:
        pending = {h for h in pending if ctx.executor.poll(h).outcome is Outcome.RUNNING}
        time.sleep(0.1)
    with ctx.sessions() as session:
        requeued = []
        for attempt in live:
            job = repo.find_job(session, attempt.job_id)
            if job is None or job.executor_handle != attempt.handle:
                continue
            attempts.end(job, stopped_as_asked=True)  # a pause: resuming is not a new try
            jobs.paused_if_pausing(session, job)
            if job.status != JobStatus.RUNNING.value:
                continue  # paused, or ended meanwhile: it stays as it is
            attempts.requeue(
                session, job,
                "Whetstone was stopped while the job was running; it resumes from its last "
                "checkpoint on the next start", counts_attempt=False,
            )  # fmt: skip
            requeued.append(job.id)
        session.commit()
    return requeued
