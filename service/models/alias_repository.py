"""Model aliases, by project and name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.pagination import Order, Page, paginate
from service.db.tables import ModelAlias


def get_alias(session: Session, project_id: str, name: str) -> ModelAlias | None:
    return session.get(ModelAlias, (project_id, name))


def set_alias(session: Session, project_id: str, name: str, model: str, when: int) -> ModelAlias:
    """Create the alias, or point the existing one at `model`."""
    row = get_alias(session, project_id, name)
    if row is None:
        row = ModelAlias(
            project_id=project_id, name=name, model=model, created_at=when, updated_at=when
        )
        session.add(row)
    else:
        row.model, row.updated_at = model, when
    session.flush()
    return row


def delete_alias(session: Session, row: ModelAlias) -> None:
    session.delete(row)
    session.flush()


def list_aliases(
    session: Session, project_id: str, *, after: str | None, limit: int, order: Order = "asc"
) -> Page[ModelAlias]:
    stmt = select(ModelAlias).where(ModelAlias.project_id == project_id)
    return paginate(
        session,
        stmt,
        created_at=ModelAlias.created_at,
        id_=ModelAlias.name,
        after=after,
        limit=limit,
        order=order,
    )


def all_aliases(session: Session, project_id: str) -> list[ModelAlias]:
    """Every alias of the project, oldest first (`/v1/models` lists them all)."""
    stmt = (
        select(ModelAlias)
        .where(ModelAlias.project_id == project_id)
        .order_by(ModelAlias.created_at, ModelAlias.name)
    )
    return list(session.scalars(stmt))


def aliases_named(session: Session, name: str) -> list[ModelAlias]:
    """The aliases called `name` in any project (the Admin API names no project)."""
    return list(session.scalars(select(ModelAlias).where(ModelAlias.name == name)))
