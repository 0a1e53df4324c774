"""`queued -> running`: claim queued jobs up to the executor's free capacity and launch them.

A claim is two short transactions, so that the trainer's first report always finds its
token: (1) lock the job row (`FOR UPDATE SKIP LOCKED` on Postgres, so replicas never take the
same job; on SQLite the conditional `UPDATE ... WHERE status = 'queued' AND attempt = n` is
the single writer's guard), write the JobSpec, store the new attempt's token hash and lease,
and mark the job `running`; commit. (2) launch through the executor and record the handle.
A launch the executor refuses (`ExecutorError`) puts the job back in the queue (the attempt
is not counted). Any other exception while claiming or launching one job (building the
JobSpec, writing it to the store, the executor) rolls back that job's claim and counts as
one of its attempts: a transient error of the database or the store, or of the launch, puts
the job back in the queue with a `warn` event and a delay (`failures.RETRY_DELAYS`) while
attempts remain; anything else fails it (`model_not_available` for a base model gone from
the registry, or a parent model the job's project may no longer use: access is checked again
at each claim, not only at creation; else `server_error`). The other jobs are claimed as usual.
"""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy.orm import Session

from contracts import layout
from contracts.spec import (
    JobSpec,
)
from service.db.tables import FineTuningJob
from service.errors import describe
from service.executors import Attempt, ExecutorError, ExecutorFull
from service.fine_tuning import attempts
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.spec import build_spec, wandb_run
from service.fine_tuning.status import JobStatus
from service.logs import log_context
from service.models import repository as models_repo
from service.scheduler.context import SchedulerContext
from service.scheduler.failures import SERVER_ERROR, is_transient, retry_delay

log = logging.getLogger(__name__)


def free_slots(ctx: SchedulerContext) -> int:
    """Capacity left: the executor's capacity less the jobs holding an attempt and the
    attempts still winding down (a killed trainer saving its checkpoint)."""
    with ctx.sessions() as session:
        busy = repo.count_busy(session)
    in_use = max(busy, len(ctx.executor.running()))
    return max(0, ctx.executor.capacity - in_use)


def claim_and_launch(ctx: SchedulerContext) -> list[str]:
    """Launch as many queued jobs as there are free slots; returns their ids."""
    launched: list[str] = []
    for _ in range(free_slots(ctx)):
        claimed = _claim_one(ctx)
        if claimed is None:
            break
        job_id, project_id, attempt = claimed
        if attempt is None:
            continue  # the claim failed and was recorded; the slot is still free
        with log_context(job=job_id, project_id=project_id):
            outcome = _launch(ctx, attempt)
        if outcome == "full":
            break
        if outcome == "launched":
            launched.append(job_id)
    return launched


def _launch(ctx: SchedulerContext, attempt: Attempt) -> Literal["launched", "full", "failed"]:
    """Launch the claimed attempt and record its handle."""
    job_id = attempt.job_id
    try:
        handle = ctx.executor.launch(attempt)
    except ExecutorError as e:
        _unclaim(ctx, job_id, attempt.number, e)
        return "full" if isinstance(e, ExecutorFull) else "failed"
    except Exception as e:
        log.error("launch of %s attempt %d failed", job_id, attempt.number, exc_info=e)
        _record_start_failure(ctx, job_id, attempt.number, e, transient=True)
        return "failed"
    try:
        _record_handle(ctx, job_id, attempt.number, handle)
    except Exception as e:  # the trainer runs, but no job holds it: stop it
        log.error("cannot record the handle of %s: %s", job_id, describe(e))
        _kill_quietly(ctx, handle)
        _record_start_failure(ctx, job_id, attempt.number, e)
        return "failed"
    log.info("%s: attempt %d launched as %s", job_id, attempt.number, handle)
    return "launched"


def _kill_quietly(ctx: SchedulerContext, handle: str) -> None:
    try:
        ctx.executor.kill(handle)
    except Exception:
        log.exception("cannot kill %s", handle)


def _claim_one(ctx: SchedulerContext) -> tuple[str, str, Attempt | None] | None:
    """The next queued job, claimed: its id, its project's and its attempt; the attempt is
    None when it was not claimed (another scheduler took it first, or claiming raised and
    the failure was recorded on the job); None when no job waits."""
    with ctx.sessions() as session:
        job = repo.next_claimable(
            session,
            skip_locked=ctx.on_postgres,
            running_per_project=ctx.settings.quota_running_jobs,
        )
        if job is None:
            return None
        job_id, number, project_id = job.id, job.attempt + 1, job.project_id
        with log_context(job=job_id, project_id=project_id):
            try:
                attempt = _claim(ctx, session, job, number)
                session.commit()  # before the launch: the trainer's first report finds its token
                return job_id, project_id, attempt
            except Exception as e:
                session.rollback()
                failure = e
    with log_context(job=job_id, project_id=project_id):
        _record_start_failure(ctx, job_id, number, failure)
    return job_id, project_id, None


def _claim(
    ctx: SchedulerContext, session: Session, job: FineTuningJob, number: int
) -> Attempt | None:
    """Take `job` for attempt `number` and write its JobSpec (the caller commits); None if
    another scheduler took it first."""
    token, token_hash = attempts.new_token()
    if attempts.take(session, job, token_hash) is None:
        session.rollback()
        return None
    if job.base_model not in ctx.registry:
        raise BaseModelGone(job.base_model)
    if job.parent_model and not models_repo.get_usable_model(
        session, job.project_id, job.parent_model
    ):  # deleted, or its permission removed, since the job was created
        raise ParentModelGone(job.parent_model)
    spec = build_spec(ctx, session, job, number)
    wandb = wandb_run(job) is not None
    ctx.store.put_bytes(layout.spec_key(job.id), spec.encode())
    attempts.start(session, job, spec, ctx.settings.scheduler_start_seconds)
    held_out = len(JobSpec.model_validate_json(spec).held_out_lines)
    if held_out and number == 1:
        plural = "s" if held_out != 1 else ""
        jobs.add_event(session, job, f"{held_out} example{plural} held out for evaluation")
    attempt = Attempt(
        job_id=job.id,
        number=number,
        spec_url=ctx.store.key_url(layout.spec_key(job.id)),
        report_url=f"{ctx.settings.resolved_report_base_url}/internal/v1/jobs/{job.id}/report",
        token=token,
        base_model=job.base_model,
        env=trainer_env(ctx, wandb),
        secret_env=trainer_secrets(ctx, wandb),
        wandb=wandb,
    )
    return attempt


class BaseModelGone(Exception):
    """The job's base model left the registry after the job was validated."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Base model {name} is no longer in this server's registry.")


class ParentModelGone(Exception):
    """The parent of a continued training is no longer the job's project's to use."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Model {name} is no longer available to this project (deleted, or the "
            "permission to use it was removed): continued training cannot start from it."
        )


def _record_start_failure(
    ctx: SchedulerContext, job_id: str, number: int, error: Exception, transient: bool = False
) -> None:
    """Claiming or launching attempt `number` raised: it counts as an attempt. Retry later
    (transient errors, while attempts remain) or fail the job; never raises."""
    try:
        with ctx.sessions() as session:
            job = repo.find_job(session, job_id)
            if job is None or JobStatus(job.status) not in (JobStatus.QUEUED, JobStatus.RUNNING):
                return
            _start_failed(session, job, number, error, transient or is_transient(error))
            session.commit()
    except Exception:
        log.exception("cannot record the failed start of %s", job_id)


def _start_failed(
    session: Session, job: FineTuningJob, number: int, error: Exception, transient: bool
) -> None:
    attempts.start_failed(job, number)
    if isinstance(error, BaseModelGone | ParentModelGone):
        attempts.fail(session, job, "model_not_available", str(error), "model")
        return
    if not transient:
        log.error("the start of %s failed", job.id, exc_info=error)
        attempts.fail(
            session, job, SERVER_ERROR,
            f"Attempt {number} of the job could not be started because of an error on the "
            f"server ({describe(error)}). Create the job again; if it fails the same way, "
            "tell the server's operator.",
        )  # fmt: skip
        return
    if job.attempt >= job.max_attempts:
        log.error("the start of %s failed", job.id, exc_info=error)
        attempts.fail(
            session, job, SERVER_ERROR,
            f"The job could not be started in {job.attempt} attempts; the last one failed "
            f"with {describe(error)}. Your data was not the problem; create the job again "
            "later, or tell the server's operator.",
        )  # fmt: skip
        return
    log.warning("the start of %s failed: %s", job.id, describe(error))
    delay = retry_delay(job.attempt)
    attempts.retry_later(
        session, job, job.attempt, delay,
        f"Attempt {number} of {job.max_attempts} could not be started ({describe(error)}); "
        f"the job is queued to try again in {delay} s",
    )  # fmt: skip


def trainer_env(ctx: SchedulerContext, wandb: bool = False) -> dict[str, str]:
    settings = ctx.settings
    max_wait = settings.trainer_report_max_wait_seconds
    env = {
        "WHETSTONE_TRAINER_REPORT_MAX_WAIT_SECONDS": f"{max_wait:g}",
        # four heartbeats a lease: a slow step, evaluation or upload never loses the attempt
        "WHETSTONE_TRAINER_HEARTBEAT_SECONDS": f"{settings.scheduler_lease_seconds / 4:g}",
    }
    if settings.s3_endpoint_url:
        env["WHETSTONE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if wandb and settings.wandb_base_url:
        env["WANDB_BASE_URL"] = settings.wandb_base_url
    return env


def trainer_secrets(ctx: SchedulerContext, wandb: bool) -> dict[str, str]:
    """The W&B API key, for a job with a `wandb` integration only."""
    key = ctx.settings.wandb_api_key
    return {"WANDB_API_KEY": key.get_secret_value()} if wandb and key is not None else {}


def _record_handle(ctx: SchedulerContext, job_id: str, number: int, handle: str) -> None:
    with ctx.sessions() as session:
        attempts.record_handle(session, job_id, number, handle)
        session.commit()


def _unclaim(ctx: SchedulerContext, job_id: str, number: int, error: ExecutorError) -> None:
    """The launch failed: back to `queued`, the attempt not counted."""
    log.warning("launch of %s attempt %d failed: %s", job_id, number, error)
    with ctx.sessions() as session:
        job = repo.find_job(session, job_id)
        if job is None or job.attempt != number or job.status != JobStatus.RUNNING.value:
            return
        attempts.unclaim(
            session, job, f"No trainer could be started yet ({error}); the job stays queued"
        )
        session.commit()
