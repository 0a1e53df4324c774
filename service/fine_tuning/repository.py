"""Fine-tuning jobs, their metadata pairs, events and checkpoints, and the scheduler's queue
queries (the jobs it validates, claims and watches)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.db.pagination import CursorNotFound, Page, paginate
from service.db.tables import (
    FineTunedModel,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobMetadata,
)
from service.fine_tuning.status import JobStatus, RequestedAction
from service.ids import now

T = TypeVar("T")


def add_job(session: Session, job: FineTuningJob) -> FineTuningJob:
    session.add(job)
    for key, value in (job.job_metadata or {}).items():
        session.add(FineTuningJobMetadata(job_id=job.id, key=key, value=value))
    session.flush()
    return job


def find_job(session: Session, job_id: str) -> FineTuningJob | None:
    """The job whatever its project: for those that hold its id only (the scheduler, the
    trainer's routes, a webhook's delivery, a model's job)."""
    return session.get(FineTuningJob, job_id)


def get_job(
    session: Session, project_id: str, job_id: str, *, for_update: bool = False
) -> FineTuningJob | None:
    """The job if it exists in this project; another project's job is `None` too.

    `for_update` locks the row (Postgres) so that a status change does not race the scheduler.
    """
    stmt = select(FineTuningJob).where(
        FineTuningJob.id == job_id, FineTuningJob.project_id == project_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def list_jobs(
    session: Session,
    project_id: str,
    *,
    after: str | None,
    limit: int,
    metadata: Mapping[str, str] | None = None,
    without_metadata: bool = False,
) -> Page[FineTuningJob]:
    """Newest first. `metadata` keeps jobs having every pair; `without_metadata` jobs with none."""
    stmt = select(FineTuningJob).where(FineTuningJob.project_id == project_id)
    pairs = FineTuningJobMetadata
    for key, value in (metadata or {}).items():
        stmt = stmt.where(
            exists().where(pairs.job_id == FineTuningJob.id, pairs.key == key, pairs.value == value)
        )
    if without_metadata:
        stmt = stmt.where(~exists().where(pairs.job_id == FineTuningJob.id))
    return paginate(
        session,
        stmt,
        created_at=FineTuningJob.created_at,
        id_=FineTuningJob.id,
        after=after,
        limit=limit,
        order="desc",
    )


def swap_status(
    session: Session, job_id: str, expected: str, changes: Mapping[str, object]
) -> bool:
    """Apply `changes` if the job's status is still `expected` (a compare-and-set: `UPDATE
    ... WHERE status = :expected`); False when another transaction changed it first."""
    swapped = session.execute(
        update(FineTuningJob)
        .where(FineTuningJob.id == job_id, FineTuningJob.status == expected)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    return bool(swapped.rowcount == 1)  # type: ignore[attr-defined]


def count_waiting(session: Session, project_id: str) -> int:
    """The project's jobs waiting to train: `validating_files` or `queued`."""
    waiting = (JobStatus.VALIDATING_FILES.value, JobStatus.QUEUED.value)
    stmt = (
        select(func.count())
        .select_from(FineTuningJob)
        .where(FineTuningJob.project_id == project_id, FineTuningJob.status.in_(waiting))
    )
    return int(session.scalar(stmt) or 0)


def count_by_status(session: Session) -> dict[str, int]:
    """Every project's jobs, counted by status (a status no job has is left out)."""
    rows = session.execute(
        select(FineTuningJob.status, func.count()).group_by(FineTuningJob.status)
    ).all()
    return {status: count for status, count in rows}


def trained_tokens(session: Session) -> int:
    """The tokens every job has trained, summed."""
    total = session.scalar(select(func.coalesce(func.sum(FineTuningJob.trained_tokens), 0)))
    return int(total or 0)


def add_event(session: Session, event: FineTuningJobEvent) -> FineTuningJobEvent:
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session, job_id: str, *, after: str | None, limit: int
) -> Page[FineTuningJobEvent]:
    """Newest first; `after` is the id of the last event seen."""
    stmt = select(FineTuningJobEvent).where(FineTuningJobEvent.job_id == job_id)
    if after is not None:
        seq = session.scalar(
            select(FineTuningJobEvent.seq).where(
                FineTuningJobEvent.id == after, FineTuningJobEvent.job_id == job_id
            )
        )
        if seq is None:
            raise CursorNotFound(after)
        stmt = stmt.where(FineTuningJobEvent.seq < seq)
    rows = list(session.scalars(stmt.order_by(FineTuningJobEvent.seq.desc()).limit(limit + 1)))
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def recent_metrics_events(session: Session, job_id: str, limit: int) -> list[FineTuningJobEvent]:
    """The job's latest `limit` metrics events, newest first."""
    stmt = (
        select(FineTuningJobEvent)
        .where(FineTuningJobEvent.job_id == job_id, FineTuningJobEvent.type == "metrics")
        .order_by(FineTuningJobEvent.seq.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt).all())


def add_checkpoint(session: Session, row: FineTuningJobCheckpoint) -> FineTuningJobCheckpoint:
    session.add(row)
    session.flush()
    return row


def get_checkpoint(session: Session, job_id: str, step: int) -> FineTuningJobCheckpoint | None:
    return session.scalar(
        select(FineTuningJobCheckpoint).where(
            FineTuningJobCheckpoint.job_id == job_id, FineTuningJobCheckpoint.step_number == step
        )
    )


def list_checkpoints(
    session: Session, job_id: str, *, after: str | None, limit: int
) -> Page[FineTuningJobCheckpoint]:
    """Latest step first, only those whose model is live (a checkpoint pruned by retention
    or whose model was deleted is not listed); `after` is the id of the last one seen."""
    ckpt = FineTuningJobCheckpoint
    stmt = (
        select(ckpt)
        .join(FineTunedModel, FineTunedModel.id == ckpt.fine_tuned_model_checkpoint)
        .where(ckpt.job_id == job_id, FineTunedModel.deleted_at.is_(None))
    )
    if after is not None:
        step = session.scalar(
            select(ckpt.step_number).where(ckpt.id == after, ckpt.job_id == job_id)
        )
        if step is None:
            raise CursorNotFound(after)
        stmt = stmt.where(ckpt.step_number < step)
    rows = list(session.scalars(stmt.order_by(ckpt.step_number.desc()).limit(limit + 1)))
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def latest_live_checkpoints(
    session: Session, job_id: str, limit: int
) -> list[FineTuningJobCheckpoint]:
    """The job's latest `limit` checkpoints whose model is not deleted, latest step first."""
    ckpt = FineTuningJobCheckpoint
    stmt = (
        select(ckpt)
        .join(FineTunedModel, FineTunedModel.id == ckpt.fine_tuned_model_checkpoint)
        .where(ckpt.job_id == job_id, FineTunedModel.deleted_at.is_(None))
        .order_by(ckpt.step_number.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt).all())


# --- The scheduler's queue -----------------------------------------------------------------
# `skip_locked`: lock the rows returned with `FOR UPDATE SKIP LOCKED`, so that scheduler
# replicas never take the same job (Postgres); SQLite has a single writer and no row locks.


def _locked(stmt: Select[T], skip_locked: bool) -> Select[T]:
    return stmt.with_for_update(skip_locked=True) if skip_locked else stmt


def _due() -> ColumnElement[bool]:
    """No retry waiting, or its time has come (`lease_expires_at` holds the next try's time
    while a job is `validating_files`, or `queued` after a failed start)."""
    return or_(FineTuningJob.lease_expires_at.is_(None), FineTuningJob.lease_expires_at <= now())


def _holds_attempt(job: type[FineTuningJob] = FineTuningJob) -> ColumnElement[bool]:
    """An executor handle, or `running` (`pausing`) without one yet (claimed, not launched)."""
    return or_(
        job.executor_handle.is_not(None),
        job.status.in_([JobStatus.RUNNING.value, JobStatus.PAUSING.value]),
    )


def validating_job_ids(session: Session, limit: int) -> list[str]:
    """Jobs in `validating_files` due for a try, oldest first."""
    return list(
        session.scalars(
            select(FineTuningJob.id)
            .where(FineTuningJob.status == JobStatus.VALIDATING_FILES.value, _due())
            .order_by(FineTuningJob.created_at, FineTuningJob.id)
            .limit(limit)
        )
    )


def lock_validating(session: Session, job_id: str, *, skip_locked: bool) -> FineTuningJob | None:
    """The job if it is still `validating_files` and no other scheduler holds its row."""
    stmt = select(FineTuningJob).where(
        FineTuningJob.id == job_id, FineTuningJob.status == JobStatus.VALIDATING_FILES.value
    )
    return session.scalars(_locked(stmt, skip_locked)).first()


def next_claimable(
    session: Session, *, skip_locked: bool, running_per_project: int = 0
) -> FineTuningJob | None:
    """The next `queued` job that may start an attempt now: no requested action, no
    attempt still winding down, no retry waiting, and (`running_per_project` > 0) its
    project holds fewer attempts than that.

    Fair across projects (round-robin by project): first the projects holding the fewest
    attempts, then the one served longest ago (its claimed jobs' latest `updated_at`; never
    served first), then the oldest job. So a project that queues 100 jobs gets one slot,
    and the next goes to another project's job, even one queued after all 100."""
    other = aliased(FineTuningJob)
    holding = (
        select(func.count())
        .where(other.project_id == FineTuningJob.project_id, _holds_attempt(other))
        .scalar_subquery()
    )
    served = aliased(FineTuningJob)
    last_served = (
        select(func.coalesce(func.max(served.updated_at), 0))
        .where(served.project_id == FineTuningJob.project_id, served.attempt > 0)
        .scalar_subquery()
    )
    stmt = (
        select(FineTuningJob)
        .where(
            FineTuningJob.status == JobStatus.QUEUED.value,
            FineTuningJob.requested_action == RequestedAction.NONE.value,
            FineTuningJob.executor_handle.is_(None),
            _due(),
        )
        .order_by(holding, last_served, FineTuningJob.created_at, FineTuningJob.id)
        .limit(1)
    )
    if running_per_project > 0:
        busy = aliased(FineTuningJob)
        full = (
            select(busy.project_id)
            .where(_holds_attempt(busy))
            .group_by(busy.project_id)
            .having(func.count() >= running_per_project)
        )
        stmt = stmt.where(FineTuningJob.project_id.not_in(full))
    return session.scalars(_locked(stmt, skip_locked)).first()


def take_attempt(session: Session, job_id: str, attempt: int, token_hash: str) -> bool:
    """`attempt + 1` begins, if the job is still `queued` at `attempt` (the claim's guard
    when two schedulers race, or a caller holds a stale row); False if it is not."""
    taken = session.execute(
        update(FineTuningJob)
        .where(
            FineTuningJob.id == job_id,
            FineTuningJob.status == JobStatus.QUEUED.value,
            FineTuningJob.attempt == attempt,
        )
        .values(attempt=attempt + 1, attempt_token_hash=token_hash)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def set_executor_handle(session: Session, job_id: str, attempt: int, handle: str) -> None:
    """Record the handle of attempt `attempt`; nothing if the job has moved on to another."""
    session.execute(
        update(FineTuningJob)
        .where(FineTuningJob.id == job_id, FineTuningJob.attempt == attempt)
        .values(executor_handle=handle)
    )


def jobs_holding_attempts(session: Session, *, skip_locked: bool) -> list[FineTuningJob]:
    """Every job with an attempt to watch."""
    stmt = select(FineTuningJob).where(_holds_attempt())
    return list(session.scalars(_locked(stmt, skip_locked)).all())


def held_attempts(session: Session) -> set[tuple[str, int]]:
    """`(job id, attempt number)` of every attempt a job holds (the rest are orphans)."""
    rows = session.execute(
        select(FineTuningJob.id, FineTuningJob.attempt).where(_holds_attempt())
    ).all()
    return {(job_id, attempt) for job_id, attempt in rows}


def count_busy(session: Session) -> int:
    """Jobs taking an executor slot: those with a handle and those claimed without one yet."""
    stmt = select(func.count()).select_from(FineTuningJob).where(_holds_attempt())
    return int(session.scalar(stmt) or 0)


def lock_job(session: Session, job_id: str) -> FineTuningJob | None:
    """The job, its row locked until the transaction ends (Postgres)."""
    return session.scalars(
        select(FineTuningJob).where(FineTuningJob.id == job_id).with_for_update()
    ).first()


def next_to_evaluate(
    session: Session, skip_locked: bool, passed_over: Collection[str] = ()
) -> FineTuningJob | None:
    """The succeeded job that has waited longest for its evaluation (none yet, or one whose
    lease ran out: its scheduler died), row-locked; `passed_over` are left out."""
    query = (
        select(FineTuningJob)
        .where(
            FineTuningJob.status == JobStatus.SUCCEEDED.value,
            or_(
                FineTuningJob.evaluation.is_(None),
                (FineTuningJob.evaluation == "running")
                & (FineTuningJob.evaluation_lease_expires_at < now()),
            ),
        )
        .order_by(FineTuningJob.finished_at, FineTuningJob.id)
        .limit(1)
    )
    if passed_over:
        query = query.where(FineTuningJob.id.notin_(passed_over))
    locked = query.with_for_update(skip_locked=True) if skip_locked else query
    return session.scalars(locked).first()
