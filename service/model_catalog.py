"""What `/v1/models` shows a project: the registry's base models (owned by `whetstone`) and
the project's own fine-tuned and checkpoint models (owned by the project), never another's."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session

from contracts.store import ObjectStore
from service.db.repositories import models as repo
from service.db.tables import FineTunedModel, Project
from service.errors import PermissionDenied, not_found
from service.ids import now
from service.models_store import unpublish_model
from service.registry import BaseModelEntry
from service.schemas.models import BASE_MODEL_OWNER, DeleteModelResponse, Model


def _base(entry: BaseModelEntry) -> Model:
    try:
        created = int(os.stat(entry.path).st_mtime)
    except OSError:
        created = 0
    return Model(id=entry.name, created=created, owned_by=BASE_MODEL_OWNER)


def _tuned(row: FineTunedModel) -> Model:
    return Model(id=row.id, created=row.created_at, owned_by=row.project_id)


def list_models(
    session: Session, registry: dict[str, BaseModelEntry], project: Project
) -> list[Model]:
    return [_base(e) for e in registry.values()] + [
        _tuned(r) for r in repo.list_models(session, project.id)
    ]


def retrieve_model(
    session: Session, registry: dict[str, BaseModelEntry], project: Project, name: str
) -> Model:
    if name in registry:
        return _base(registry[name])
    row = repo.get_model(session, project.id, name)
    if row is None:
        raise not_found("model", name, param="model")
    return _tuned(row)


def delete_model(
    session: Session,
    store: ObjectStore,
    registry: dict[str, BaseModelEntry],
    project: Project,
    name: str,
) -> DeleteModelResponse:
    """Delete one of the project's fine-tuned models: its pointer goes first, so no vLLM can
    resolve the name any more even if the database write then fails (a retry finishes it)."""
    if name in registry:
        raise PermissionDenied(
            f"You have insufficient permissions for this operation: {name} is a base model "
            "and cannot be deleted.",
            param="model",
            code="insufficient_permissions",
        )
    row = repo.get_model(session, project.id, name)
    if row is None:
        raise not_found("model", name, param="model")
    unpublish_model(store, name)
    repo.mark_deleted(session, row, now())
    return DeleteModelResponse(id=name, deleted=True)
