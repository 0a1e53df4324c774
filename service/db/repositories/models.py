"""Fine-tuned models (final and checkpoint), by name."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, String, and_, bindparam, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.db.tables import ApiKey, CheckpointPermission, FineTunedModel, ModelAlias, Project


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


def _usable_by(project_id: InstrumentedAttribute[str] | str) -> ColumnElement[bool]:
    """The project's own models and those another project's were granted to it
    (`CheckpointPermission`)."""
    granted = select(CheckpointPermission.model).where(
        CheckpointPermission.project_id == project_id
    )
    return or_(FineTunedModel.project_id == project_id, FineTunedModel.id.in_(granted))


def get_usable_model(session: Session, project_id: str, name: str) -> FineTunedModel | None:
    """The live model `name` if the project owns it or was granted it; else `None`."""
    return session.scalar(
        select(FineTunedModel).where(
            FineTunedModel.id == name,
            FineTunedModel.deleted_at.is_(None),
            _usable_by(project_id),
        )
    )


def list_models(session: Session, project_id: str) -> list[FineTunedModel]:
    """The project's live models and those granted to it, oldest first."""
    stmt = (
        select(FineTunedModel)
        .where(_usable_by(project_id), FineTunedModel.deleted_at.is_(None))
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
# compiles it once. A key of an archived project is no key. The project's alias of the name,
# if any, stands for its target (`service.models.aliases`).
_NAME = bindparam("model", type_=String)
_TARGET = func.coalesce(ModelAlias.model, _NAME)
_KEY_AND_MODEL = (
    select(ApiKey.project_id, _TARGET.label("target"), FineTunedModel.base_model)
    .join(Project, and_(Project.id == ApiKey.project_id, Project.archived_at.is_(None)))
    .outerjoin(
        ModelAlias, and_(ModelAlias.project_id == ApiKey.project_id, ModelAlias.name == _NAME)
    )
    .outerjoin(
        FineTunedModel,
        and_(
            _usable_by(ApiKey.project_id),
            FineTunedModel.id == _TARGET,
            FineTunedModel.deleted_at.is_(None),
        ),
    )
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


def key_and_model(
    connection: Connection, key_hash: str, model: str
) -> tuple[str | None, str, str | None]:
    """(the project of the key with this hash, or None when there is no such key; the model
    `model` names for that project (the target of its alias `model`, else `model`); the base
    model of that live model if the project owns or was granted it, or None), in one query."""
    row = connection.execute(_KEY_AND_MODEL, {"key_hash": key_hash, "model": model}).first()
    return (None, model, None) if row is None else (row.project_id, row.target, row.base_model)
