"""What `/v1/models` shows a project: the registry's base models (owned by `whetstone`) and
the project's own fine-tuned and checkpoint models (owned by the project), and another
project's that an admin granted it (`checkpoint_permissions`, owned by that project), and the
project's aliases (`service.models.aliases`: owned by the project, `alias_for` their model).
Deleting one is `service.models.lifecycle.delete`."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session

from service.db.tables import FineTunedModel, ModelAlias, Project
from service.errors import not_found
from service.models import alias_repository as aliases_repo
from service.models import repository as repo
from service.models.schemas import BASE_MODEL_OWNER, Model
from service.registry import BaseModelEntry


def _base(entry: BaseModelEntry) -> Model:
    try:
        created = int(os.stat(entry.path).st_mtime)
    except OSError:
        created = 0
    return Model(id=entry.name, created=created, owned_by=BASE_MODEL_OWNER)


def _tuned(row: FineTunedModel) -> Model:
    return Model(id=row.id, created=row.created_at, owned_by=row.project_id)


def _alias(row: ModelAlias) -> Model:
    return Model(id=row.name, created=row.created_at, owned_by=row.project_id, alias_for=row.model)


def list_models(
    session: Session, registry: dict[str, BaseModelEntry], project: Project
) -> list[Model]:
    return (
        [_base(e) for e in registry.values()]
        + [_tuned(r) for r in repo.list_models(session, project.id)]
        + [_alias(r) for r in aliases_repo.all_aliases(session, project.id)]
    )


def retrieve_model(
    session: Session, registry: dict[str, BaseModelEntry], project: Project, name: str
) -> Model:
    if name in registry:
        return _base(registry[name])
    row = repo.get_usable_model(session, project.id, name)
    if row is None and (alias := aliases_repo.get_alias(session, project.id, name)) is not None:
        return _alias(alias)
    if row is None:
        raise not_found("model", name, param="model")
    return _tuned(row)
