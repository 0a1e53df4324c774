"""Checkpoint permissions: which projects may use another project's fine-tuned model."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.pagination import Order, Page, paginate
from service.db.tables import CheckpointPermission
from service.ids import new_id, now


def grant(session: Session, model: str, project_ids: list[str]) -> list[CheckpointPermission]:
    """A permission per project (the existing one when the project already has it)."""
    existing = {
        p.project_id: p
        for p in session.scalars(
            select(CheckpointPermission).where(
                CheckpointPermission.model == model,
                CheckpointPermission.project_id.in_(project_ids),
            )
        )
    }
    granted: list[CheckpointPermission] = []
    for project_id in dict.fromkeys(project_ids):  # each once, in the order asked
        row = existing.get(project_id)
        if row is None:
            row = CheckpointPermission(
                id=new_id("cp"), model=model, project_id=project_id, created_at=now()
            )
            session.add(row)
        granted.append(row)
    session.flush()
    return granted


def list_permissions(
    session: Session,
    model: str,
    *,
    project_id: str | None,
    after: str | None,
    limit: int,
    order: Order,
) -> Page[CheckpointPermission]:
    stmt = select(CheckpointPermission).where(CheckpointPermission.model == model)
    if project_id is not None:
        stmt = stmt.where(CheckpointPermission.project_id == project_id)
    return paginate(
        session,
        stmt,
        created_at=CheckpointPermission.created_at,
        id_=CheckpointPermission.id,
        after=after,
        limit=limit,
        order=order,
    )


def get_permission(session: Session, model: str, permission_id: str) -> CheckpointPermission | None:
    return session.scalar(
        select(CheckpointPermission).where(
            CheckpointPermission.id == permission_id, CheckpointPermission.model == model
        )
    )


def delete_permission(session: Session, row: CheckpointPermission) -> None:
    session.delete(row)
    session.flush()
