"""Fine-tuning jobs, their metadata pairs, events and checkpoints."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from service.db.repositories.pagination import CursorNotFound, Page, paginate
from service.db.tables import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobMetadata,
)


def add_job(session: Session, job: FineTuningJob) -> FineTuningJob:
    session.add(job)
    for key, value in (job.job_metadata or {}).items():
        session.add(FineTuningJobMetadata(job_id=job.id, key=key, value=value))
    session.flush()
    return job


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
    """Latest step first; `after` is the id of the last checkpoint seen."""
    ckpt = FineTuningJobCheckpoint
    stmt = select(ckpt).where(ckpt.job_id == job_id)
    if after is not None:
        step = session.scalar(
            select(ckpt.step_number).where(ckpt.id == after, ckpt.job_id == job_id)
        )
        if step is None:
            raise CursorNotFound(after)
        stmt = stmt.where(ckpt.step_number < step)
    rows = list(session.scalars(stmt.order_by(ckpt.step_number.desc()).limit(limit + 1)))
    return Page(items=rows[:limit], has_more=len(rows) > limit)
