"""`queued -> running`: claim queued jobs up to the executor's free capacity and launch them.

A claim is two short transactions, so that the trainer's first report always finds its
token: (1) lock the job row (`FOR UPDATE SKIP LOCKED` on Postgres, so replicas never take the
same job; on SQLite the conditional `UPDATE ... WHERE status = 'queued' AND attempt = n` is
the single writer's guard), write the JobSpec, store the new attempt's token hash and lease,
and mark the job `running`; commit. (2) launch through the executor and record the handle.
A launch that fails puts the job back in the queue (the attempt is not counted).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.repositories.files import file_key
from service.db.tables import FineTunedModel, FineTuningJob
from service.executors import Attempt, ExecutorError, ExecutorFull
from service.ids import now
from service.jobs import service as jobs
from service.jobs.hyperparameters import FineTuneMethod
from service.jobs.status import JobStatus, RequestedAction
from service.scheduler.context import SchedulerContext, new_attempt_token, skip_locked
from trainer import layout
from trainer.spec import BaseModelRef, JobSpec, Method, SupervisedHyperparameters

log = logging.getLogger(__name__)


def free_slots(ctx: SchedulerContext) -> int:
    """Capacity left: the executor's capacity less the jobs holding an attempt and the
    attempts still winding down (a killed trainer saving its checkpoint)."""
    with ctx.sessions() as session:
        busy = session.scalars(
            select(FineTuningJob.id).where(FineTuningJob.executor_handle.is_not(None))
        ).all()
        claimed = session.scalars(
            select(FineTuningJob.id).where(
                FineTuningJob.status == JobStatus.RUNNING.value,
                FineTuningJob.executor_handle.is_(None),
            )
        ).all()
    in_use = max(len(busy) + len(claimed), len(ctx.executor.running()))
    return max(0, ctx.executor.capacity - in_use)


def claim_and_launch(ctx: SchedulerContext) -> list[str]:
    """Launch as many queued jobs as there are free slots; returns their ids."""
    launched: list[str] = []
    for _ in range(free_slots(ctx)):
        claimed = _claim_one(ctx)
        if claimed is None:
            break
        job_id, attempt = claimed
        try:
            handle = ctx.executor.launch(attempt)
        except ExecutorError as e:
            _unclaim(ctx, job_id, attempt.number, e)
            if isinstance(e, ExecutorFull):
                break
            continue
        _record_handle(ctx, job_id, attempt.number, handle)
        launched.append(job_id)
    return launched


def _claim_one(ctx: SchedulerContext) -> tuple[str, Attempt] | None:
    with ctx.sessions() as session:
        stmt = (
            select(FineTuningJob)
            .where(
                FineTuningJob.status == JobStatus.QUEUED.value,
                FineTuningJob.requested_action == RequestedAction.NONE.value,
                FineTuningJob.executor_handle.is_(None),
            )
            .order_by(FineTuningJob.created_at, FineTuningJob.id)
            .limit(1)
        )
        job = session.scalars(skip_locked(stmt, ctx.on_postgres)).first()
        if job is None:
            return None
        number = job.attempt + 1
        token, token_hash = new_attempt_token()
        taken = session.execute(
            update(FineTuningJob)
            .where(
                FineTuningJob.id == job.id,
                FineTuningJob.status == JobStatus.QUEUED.value,
                FineTuningJob.attempt == job.attempt,
            )
            .values(attempt=number, attempt_token_hash=token_hash)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        session.refresh(job)
        spec = build_spec(ctx, session, job, number)
        ctx.store.put_bytes(layout.spec_key(job.id), spec.encode())
        job.spec = spec
        job.lease_expires_at = now() + int(ctx.settings.scheduler_start_seconds)
        _announce_start(session, job, number)
        session.commit()
        attempt = Attempt(
            job_id=job.id,
            number=number,
            spec_url=ctx.store.key_url(layout.spec_key(job.id)),
            report_url=f"{ctx.settings.resolved_report_base_url}/internal/v1/jobs/{job.id}/report",
            token=token,
            base_model=job.base_model,
            env=_trainer_env(ctx),
        )
        return job.id, attempt


def _announce_start(session: Session, job: FineTuningJob, number: int) -> None:
    """`Fine-tuning job started`; a later attempt says where it resumes, at warn level."""
    if number == 1 and not job.resume_from:
        jobs.transition(session, job, JobStatus.RUNNING)
        return
    of = f"(attempt {number} of {job.max_attempts})"
    if job.resume_from:
        message = f"Resuming from checkpoint at step {layout.step_of(job.resume_from)} {of}"
    else:
        message = f"Starting again from the beginning, no checkpoint was saved yet {of}"
    jobs.transition(session, job, JobStatus.RUNNING, message, level="warn")


def build_spec(ctx: SchedulerContext, session: Session, job: FineTuningJob, number: int) -> str:
    """The JobSpec of attempt `number`, as JSON (stored with the job and in the store)."""
    entry = ctx.registry[job.base_model]
    hp = FineTuneMethod.model_validate(job.method).hyperparameters
    supervised = SupervisedHyperparameters(
        n_epochs=int(hp.n_epochs),
        batch_size=int(hp.batch_size),
        learning_rate_multiplier=float(hp.learning_rate_multiplier),
    )
    extra: dict[str, int | str] = {}
    if ctx.settings.scheduler_checkpoint_every_steps is not None:
        extra["checkpoint_every_steps"] = ctx.settings.scheduler_checkpoint_every_steps
    if job.parent_model:  # continued training starts from the parent's adapter
        parent = session.get(FineTunedModel, job.parent_model)
        if parent is not None:
            extra["init_adapter"] = ctx.store.key_url(parent.adapter_prefix)
    spec = JobSpec(
        job_id=job.id,
        base_model=BaseModelRef(name=entry.name, path=entry.path, max_seq_len=entry.max_seq_len),
        training_file=ctx.store.key_url(file_key(job.training_file)),
        validation_file=(
            ctx.store.key_url(file_key(job.validation_file)) if job.validation_file else None
        ),
        method=Method(type="supervised", supervised=supervised),
        seed=job.seed,
        output=ctx.store.key_url(layout.job_prefix(job.id)),
        resume_from=ctx.store.key_url(job.resume_from) if job.resume_from else None,
        attempt=number,
        **extra,
    )
    return spec.model_dump_json(indent=1)


def _trainer_env(ctx: SchedulerContext) -> dict[str, str]:
    endpoint = ctx.settings.s3_endpoint_url
    return {"WHETSTONE_S3_ENDPOINT_URL": endpoint} if endpoint else {}


def _record_handle(ctx: SchedulerContext, job_id: str, number: int, handle: str) -> None:
    with ctx.sessions() as session:
        session.execute(
            update(FineTuningJob)
            .where(FineTuningJob.id == job_id, FineTuningJob.attempt == number)
            .values(executor_handle=handle)
        )
        session.commit()


def _unclaim(ctx: SchedulerContext, job_id: str, number: int, error: ExecutorError) -> None:
    """The launch failed: back to `queued`, the attempt not counted."""
    log.warning("launch of %s attempt %d failed: %s", job_id, number, error)
    with ctx.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        if job is None or job.attempt != number or job.status != JobStatus.RUNNING.value:
            return
        job.attempt = number - 1
        job.attempt_token_hash = None
        job.lease_expires_at = None
        jobs.transition(
            session, job, JobStatus.QUEUED,
            f"No trainer could be started yet ({error}); the job stays queued", level="warn",
        )  # fmt: skip
        session.commit()
