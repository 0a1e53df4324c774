"""Model aliases: a project's other names for models it may use (Whetstone's extension under
`/v1/models/aliases`).

An alias makes `name` answer as `model` for this project's keys, wherever a model name is
taken: chat completions (`service.models.access`, in its one query), `/v1/models`, a job's
`model` (continued training), the dashboard. The typical one is an OpenAI fine-tuned model's
name (`ft:gpt-4o-mini-2024-07-18:acme::AbC123`) pointing at the model its migrated job made,
so that an application moves by changing its base URL and key only.

Rules, checked here and nowhere else:
- names are letters, digits and `._:-`, at most 255 characters, no `..`;
- an alias never shadows a model: a registered base model's name, or any fine-tuned model's
  name (of any project, even deleted), is refused (409); a base model registered later under
  an alias's name wins over the alias;
- the target is a base model of the registry or a live model the project owns or was granted;
  another project's model is the same 404 as an unknown one; an alias of an alias is refused;
- aliases are per project: another project's alias of the same name is a different one.
"""

from __future__ import annotations

import re
from collections.abc import Container

from sqlalchemy.orm import Session

from service.db.tables import ModelAlias, Project
from service.errors import Conflict, InvalidRequest, not_found
from service.ids import now
from service.models import alias_repository as repo
from service.models import repository as models_repo

MAX_NAME = 255
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_NAME - 1}}}")


def check_name(name: str, param: str = "name") -> None:
    """400 for a name an alias cannot have (path characters, `..`, too long, empty)."""
    if _NAME.fullmatch(name) is None or ".." in name:
        raise InvalidRequest(
            f"Invalid alias name {name[:80]!r}: use letters, digits and the characters "
            f"'.', '_', ':' and '-' (at most {MAX_NAME}, starting with a letter or a digit, "
            "no '..').",
            param=param,
            code="invalid_value",
        )


def resolve(session: Session, base_models: Container[str], project_id: str, name: str) -> str:
    """The model `name` stands for in this project: the alias's target, else `name` itself
    (a base model's name is always the base model)."""
    if name in base_models:
        return name
    row = repo.get_alias(session, project_id, name)
    return row.model if row is not None else name


def set_alias(
    session: Session, base_models: Container[str], project: Project, name: str, model: str
) -> ModelAlias:
    """Create the alias `name` of `model`, or point it at `model` if it exists."""
    check_name(name)
    if name in base_models or models_repo.find_model(session, name) is not None:
        raise Conflict(
            f"{name} is the name of a model; an alias cannot shadow a model.",
            param="name",
            code="model_name_taken",
        )
    if model not in base_models:
        if repo.get_alias(session, project.id, model) is not None:
            raise InvalidRequest(
                f"{model} is an alias; point the alias at a model.",
                param="model",
                code="invalid_value",
            )
        if models_repo.get_usable_model(session, project.id, model) is None:
            raise not_found("model", model, param="model")
    return repo.set_alias(session, project.id, name, model, now())


def get_alias(session: Session, project: Project, name: str) -> ModelAlias:
    row = repo.get_alias(session, project.id, name)
    if row is None:
        raise not_found("alias", name, param="name")
    return row


def delete_alias(session: Session, project: Project, name: str) -> None:
    repo.delete_alias(session, get_alias(session, project, name))


def resolve_any(session: Session, name: str) -> str:
    """For the Admin API, which names no project: `name` itself when it is a model's name,
    else the one model every alias of that name points at; 400 when projects' aliases of
    that name point at different models."""
    if models_repo.find_model(session, name) is not None:
        return name
    targets = sorted({row.model for row in repo.aliases_named(session, name)})
    if len(targets) > 1:
        raise InvalidRequest(
            f"{name} is an alias of several projects' models ({', '.join(targets)}); name "
            "the model itself.",
            param="fine_tuned_model_checkpoint",
            code="ambiguous_alias",
        )
    return targets[0] if targets else name


def refuse_model_delete(session: Session, project: Project, name: str) -> None:
    """400 for `DELETE /v1/models/{alias}`: deleting the model through another name is
    too easy a mistake; the alias itself goes with `DELETE /v1/models/aliases/{name}`."""
    row = repo.get_alias(session, project.id, name)
    if row is not None:
        raise InvalidRequest(
            f"{name} is an alias of {row.model}. Delete the alias with DELETE "
            f"/v1/models/aliases/{name}, or the model by its own name.",
            param="model",
            code="model_is_alias",
        )
