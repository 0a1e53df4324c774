"""`/v1/fine_tuning/checkpoints/{model}/permissions`: an admin grants projects the use of a
fine-tuned or checkpoint model of another project (chat, `/v1/models`, continued training),
lists and deletes those grants. Admin keys only, as in OpenAI's API."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service.db.tables import FineTunedModel
from service.deps import ServicesDep, SessionDep
from service.errors import InvalidRequest, not_found
from service.keys import project_repository as projects
from service.keys.dependencies import AdminDep
from service.models import aliases
from service.models import permission_repository as repo
from service.models import repository as models_repo
from service.models.permission_schemas import (
    CreateFineTuningCheckpointPermissionRequest,
    DeleteFineTuningCheckpointPermissionResponse,
    ListFineTuningCheckpointPermissionResponse,
)
from service.schemas.common import ErrorResponse
from service.schemas.params import After, Limit

router = APIRouter(
    tags=["Fine-tuning"],
    responses={403: {"model": ErrorResponse, "description": "Not an admin API key."}},
)

PERMISSIONS = "/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions"


@router.get(
    PERMISSIONS,
    operation_id="listFineTuningCheckpointPermissions",
    response_model=ListFineTuningCheckpointPermissionResponse,
)
def list_permissions(
    fine_tuned_model_checkpoint: str,
    admin: AdminDep,
    session: SessionDep,
    project_id: str | None = None,
    after: After = None,
    limit: Limit = 10,
    order: Literal["ascending", "descending"] = "descending",
) -> ListFineTuningCheckpointPermissionResponse:
    """The model's permissions (one project's with `project_id`), latest first by default."""
    model = _model(session, fine_tuned_model_checkpoint)
    page = repo.list_permissions(
        session,
        model.id,
        project_id=project_id,
        after=after,
        limit=limit,
        order="asc" if order == "ascending" else "desc",
    )
    return ListFineTuningCheckpointPermissionResponse.of(page.items, page.has_more)


@router.post(
    PERMISSIONS,
    operation_id="createFineTuningCheckpointPermission",
    response_model=ListFineTuningCheckpointPermissionResponse,
)
def create_permission(
    fine_tuned_model_checkpoint: str,
    body: CreateFineTuningCheckpointPermissionRequest,
    admin: AdminDep,
    session: SessionDep,
) -> ListFineTuningCheckpointPermissionResponse:
    """Grant each project the use of the model (granting twice changes nothing)."""
    model = _model(session, fine_tuned_model_checkpoint)
    for i, project_id in enumerate(body.project_ids):
        project = projects.get_project(session, project_id)
        if project is None or project.archived_at is not None:
            raise InvalidRequest(
                f"No such project: {project_id}" + (" (archived)" if project is not None else ""),
                param=f"project_ids[{i}]",
                code="project_not_found",
            )
        if project.id == model.project_id:
            raise InvalidRequest(
                f"Project {project_id} owns {model.id}: it needs no permission.",
                param=f"project_ids[{i}]",
                code="invalid_value",
            )
    rows = repo.grant(session, model.id, body.project_ids)
    return ListFineTuningCheckpointPermissionResponse.of(rows, has_more=False)


@router.delete(
    PERMISSIONS + "/{permission_id}",
    operation_id="deleteFineTuningCheckpointPermission",
    response_model=DeleteFineTuningCheckpointPermissionResponse,
)
def delete_permission(
    fine_tuned_model_checkpoint: str,
    permission_id: str,
    admin: AdminDep,
    session: SessionDep,
    services: ServicesDep,
) -> DeleteFineTuningCheckpointPermissionResponse:
    """Take the use of the model away from the project: refused from its next request on."""
    model = _model(session, fine_tuned_model_checkpoint)
    row = repo.get_permission(session, model.id, permission_id)
    if row is None:
        raise not_found("permission", permission_id, param="permission_id")
    repo.delete_permission(session, row)
    session.commit()  # before the revocation is recorded (see `service.keys.revocations`)
    services.chat_access.revoked()
    return DeleteFineTuningCheckpointPermissionResponse(id=permission_id)


def _model(session: Session, name: str) -> FineTunedModel:
    model = models_repo.find_model(session, aliases.resolve_any(session, name))
    if model is None or model.deleted_at is not None:
        raise not_found("model", name, param="fine_tuned_model_checkpoint")
    return model
