"""`/v1/models/aliases`: a project's other names for its models (Whetstone's extension of
OpenAI's Models resource; `service.models.aliases` has the rules). Included in the models
router ahead of `/models/{model}`, so that `aliases` is never read as a model's name."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from service.deps import ServicesDep, SessionDep
from service.keys.dependencies import ProjectDep
from service.models import alias_repository as repo
from service.models import aliases
from service.models.schemas import (
    CreateModelAliasRequest,
    DeleteModelAliasResponse,
    ListModelAliasesResponse,
    ModelAlias,
)
from service.schemas.common import ErrorResponse
from service.schemas.params import After, Limit

router = APIRouter(tags=["Models"])

ALIAS = "/models/aliases/{name}"


@router.post(
    "/models/aliases",
    operation_id="createModelAlias",
    response_model=ModelAlias,
    responses={409: {"model": ErrorResponse, "description": "The name is a model's."}},
)
def create_alias(
    body: CreateModelAliasRequest, project: ProjectDep, session: SessionDep, services: ServicesDep
) -> ModelAlias:
    """Make `name` answer as `model` for this project, or point the existing alias `name`
    at `model` (after a retrain). Chat completions, `/v1/models` and fine-tuning jobs take
    the alias wherever they take a model's name."""
    row = aliases.set_alias(session, services.registry, project, body.name, body.model)
    alias = ModelAlias.of(row)
    session.commit()  # before the chat route forgets what it remembered of the old target
    services.chat_access.revoked()
    return alias


@router.get(
    "/models/aliases", operation_id="listModelAliases", response_model=ListModelAliasesResponse
)
def list_aliases(
    project: ProjectDep,
    session: SessionDep,
    after: After = None,
    limit: Limit = 20,
    order: Literal["asc", "desc"] = "asc",
) -> ListModelAliasesResponse:
    """This project's aliases, oldest first by default."""
    page = repo.list_aliases(session, project.id, after=after, limit=limit, order=order)
    return ListModelAliasesResponse.of(page.items, page.has_more)


@router.get(ALIAS, operation_id="retrieveModelAlias", response_model=ModelAlias)
def retrieve_alias(name: str, project: ProjectDep, session: SessionDep) -> ModelAlias:
    return ModelAlias.of(aliases.get_alias(session, project, name))


@router.delete(ALIAS, operation_id="deleteModelAlias", response_model=DeleteModelAliasResponse)
def delete_alias(
    name: str, project: ProjectDep, session: SessionDep, services: ServicesDep
) -> DeleteModelAliasResponse:
    """Delete the alias (the model stays); the name answers 404 from the next request on."""
    aliases.delete_alias(session, project, name)
    session.commit()  # before the chat route forgets what it remembered of the alias
    services.chat_access.revoked()
    return DeleteModelAliasResponse(id=name, deleted=True)
