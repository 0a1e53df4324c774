"""Fine-tuned models (final and checkpoint), by name."""

from __future__ import annotations

from sqlalchemy import Connection, and_, bindparam, select
from sqlalchemy.orm import Session

from service.db.tables import ApiKey, FineTunedModel


def add_model(session: Session, row: FineTunedModel) -> FineTunedModel:
    session.add(row)
    session.flush()
    return row


def find_model(session: Session, name: str) -> FineTunedModel | None:
    """The model `name` whatever its project, live or deleted (a name is never reused)."""
    return session.get(FineTunedModel, name)


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


def live_checkpoint_models(session: Session, job_id: str) -> list[FineTunedModel]:
    """The job's checkpoint models not deleted yet, oldest first."""
    stmt = (
        select(FineTunedModel)
        .where(
            FineTunedModel.job_id == job_id,
            FineTunedModel.kind == "checkpoint",
            FineTunedModel.deleted_at.is_(None),
        )
        .order_by(FineTunedModel.created_at, FineTunedModel.id)
    )
    return list(session.scalars(stmt))


def mark_deleted(session: Session, row: FineTunedModel, when: int) -> None:
    row.deleted_at = when
    session.flush()


# One statement for the chat route's whole database work; built once, so that SQLAlchemy
# compiles it once.
_KEY_AND_MODEL = (
    select(ApiKey.project_id, FineTunedModel.base_model)
    .outerjoin(
        FineTunedModel,
        and_(
            FineTunedModel.project_id == ApiKey.project_id,
            FineTunedModel.id == bindparam("model"),
            FineTunedModel.deleted_at.is_(None),
        ),
    )
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


def key_and_model(connection: Connection, key_hash: str, model: str) -> tuple[bool, str | None]:
    """(whether the key with this hash exists, the base model of its project's live model
    `model`, or None when the project has no such model), in one query."""
    row = connection.execute(_KEY_AND_MODEL, {"key_hash": key_hash, "model": model}).first()
    return (False, None) if row is None else (True, row.base_model)
