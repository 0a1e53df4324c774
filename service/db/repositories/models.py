"""Fine-tuned models (final and checkpoint), by name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import FineTunedModel


def add_model(session: Session, row: FineTunedModel) -> FineTunedModel:
    session.add(row)
    session.flush()
    return row


def get_model(session: Session, project_id: str, name: str) -> FineTunedModel | None:
    """The live (not deleted) model `name` of this project; anything else is `None`."""
    return session.scalar(
        select(FineTunedModel).where(
            FineTunedModel.id == name,
            FineTunedModel.project_id == project_id,
            FineTunedModel.deleted_at.is_(None),
        )
    )


def list_models(session: Session, project_id: str) -> list[FineTunedModel]:
    """The project's live models, oldest first."""
    stmt = (
        select(FineTunedModel)
        .where(FineTunedModel.project_id == project_id, FineTunedModel.deleted_at.is_(None))
        .order_by(FineTunedModel.created_at, FineTunedModel.id)
    )
    return list(session.scalars(stmt))


def mark_deleted(session: Session, row: FineTunedModel, when: int) -> None:
    row.deleted_at = when
    session.flush()
