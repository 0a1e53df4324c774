"""`/v1/models`: list, retrieve and delete models, and (`service.models.alias_routes`, first)
the project's model aliases. Model ids contain colons (`ft:base:project:suffix:abc12345`);
they travel as one path segment."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ServicesDep, SessionDep
from service.keys.dependencies import ProjectDep
from service.models import alias_routes, aliases, lifecycle
from service.models.catalog import list_models, retrieve_model
from service.models.schemas import DeleteModelResponse, ListModelsResponse, Model
from service.schemas.common import ErrorResponse

router = APIRouter(tags=["Models"])
router.include_router(alias_routes.router)  # before /models/{model} would take "aliases"


@router.get(
    "/models",
    operation_id="listModels",
    response_model=ListModelsResponse,
    response_model_exclude_none=True,  # `alias_for` on aliases only
)
def list_(project: ProjectDep, session: SessionDep, services: ServicesDep) -> ListModelsResponse:
    """The registry's base models, this project's fine-tuned and checkpoint models (and
    those granted to it), and its aliases (with `alias_for`)."""
    return ListModelsResponse(data=list_models(session, services.registry, project))


@router.get(
    "/models/{model}",
    operation_id="retrieveModel",
    response_model=Model,
    response_model_exclude_none=True,
)
def retrieve(model: str, project: ProjectDep, session: SessionDep, services: ServicesDep) -> Model:
    return retrieve_model(session, services.registry, project, model)


@router.delete(
    "/models/{model}",
    operation_id="deleteModel",
    response_model=DeleteModelResponse,
    responses={403: {"model": ErrorResponse, "description": "A base model cannot be deleted."}},
)
def delete(
    model: str, project: ProjectDep, session: SessionDep, services: ServicesDep
) -> DeleteModelResponse:
    """Delete one of this project's fine-tuned models; vLLM can no longer resolve it. A job's
    final model takes the job's checkpoint models with it (they leave `/v1/models` and the
    job's checkpoints, and answer 404); a checkpoint model goes alone. The job and its events
    stay. An alias is deleted with `DELETE /v1/models/aliases/{name}`."""
    aliases.refuse_model_delete(session, project, model)
    return lifecycle.delete(
        session,
        services.store,
        services.registry,
        project,
        model,
        access=services.chat_access,
        adapters=services.adapters,
    )
