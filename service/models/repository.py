"""Fine-tuned models (final and checkpoint), by name."""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    String,
    and_,
    bindparam,
    func,
    join,
    or_,
    select,
)
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


# One statement for the question "which model does this name stand for, in the project of
# this key" (the chat route's whole database work), one for "... in this project" (a
# reinforcement job's graders, `service.graders.reach`); built once, so that SQLAlchemy
# compiles each once. A key of an archived project is no key. The project's alias of the
# name, if any, stands for its target (`service.models.aliases`).
_NAME = bindparam("model", type_=String)
_TARGET = func.coalesce(ModelAlias.model, _NAME)


def _model_named(
    project_id: InstrumentedAttribute[str], caller: FromClause
) -> Select[str, str, str]:
    """(the project `project_id` of `caller`'s row, the model `:model` names there, the base
    model of that live model if the project owns or was granted it)."""
    return (
        select(project_id.label("project_id"), _TARGET.label("target"), FineTunedModel.base_model)
        .select_from(caller)
        .outerjoin(ModelAlias, and_(ModelAlias.project_id == project_id, ModelAlias.name == _NAME))
        .outerjoin(
            FineTunedModel,
            and_(
                _usable_by(project_id),
                FineTunedModel.id == _TARGET,
                FineTunedModel.deleted_at.is_(None),
            ),
        )
    )


_LIVE_KEY = join(
    ApiKey, Project, and_(Project.id == ApiKey.project_id, Project.archived_at.is_(None))
)
_BY_KEY = _model_named(ApiKey.project_id, _LIVE_KEY).where(ApiKey.key_hash == bindparam("key_hash"))
_BY_PROJECT = _model_named(Project.id, Project.__table__).where(
    Project.id == bindparam("project_id")
)


def model_named(
    connection: Connection,
    model: str,
    *,
    key_hash: str | None = None,
    project_id: str | None = None,
) -> tuple[str | None, str, str | None]:
    """For the project of the key with this hash (or the project `project_id`), in one query:
    (that project, or None when there is no such key or project; the model `model` names
    there (the target of its alias `model`, else `model`); the base model of that live model
    if the project owns or was granted it, or None)."""
    if key_hash is not None:
        row = connection.execute(_BY_KEY, {"key_hash": key_hash, "model": model}).first()
    else:
        row = connection.execute(_BY_PROJECT, {"project_id": project_id, "model": model}).first()
    return (None, model, None) if row is None else (row.project_id, row.target, row.base_model)
