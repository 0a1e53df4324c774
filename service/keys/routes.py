"""`/v1/organization/projects`: the Admin API's projects and their API keys (admin keys only).

Keys are made with `whetstone keys create --project NAME`, as OpenAI makes them in its
dashboard; here they are listed, retrieved and deleted. A deleted key, or a key of an
archived project, is refused from the next request on, chat included.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service.db.tables import ApiKey as ApiKeyRow
from service.db.tables import Project as ProjectRow
from service.deps import ServicesDep, SessionDep
from service.errors import Conflict, not_found
from service.keys import project_repository as repo
from service.keys.dependencies import AdminDep
from service.keys.schemas import (
    CreateProjectRequest,
    DeleteProjectApiKeyResponse,
    ListProjectApiKeysResponse,
    ListProjectsResponse,
    Project,
    ProjectApiKey,
)
from service.schemas.common import ErrorResponse
from service.schemas.params import After, Limit

router = APIRouter(
    tags=["Projects"],
    responses={403: {"model": ErrorResponse, "description": "Not an admin API key."}},
)

PROJECTS = "/organization/projects"
PROJECT = PROJECTS + "/{project_id}"
KEYS = PROJECT + "/api_keys"


@router.get(PROJECTS, operation_id="list-projects", response_model=ListProjectsResponse)
def list_projects(
    admin: AdminDep,
    session: SessionDep,
    after: After = None,
    limit: Limit = 20,
    include_archived: bool = False,
) -> ListProjectsResponse:
    """Every project, oldest first; archived ones only with `include_archived=true`."""
    page = repo.list_projects(session, after=after, limit=limit, include_archived=include_archived)
    return ListProjectsResponse.of(page.items, page.has_more)


@router.post(
    PROJECTS,
    operation_id="create-project",
    response_model=Project,
    responses={409: {"model": ErrorResponse, "description": "A project has this name."}},
)
def create_project(admin: AdminDep, session: SessionDep, body: CreateProjectRequest) -> Project:
    if repo.find_project(session, body.name) is not None:
        raise Conflict(
            f"A project named {body.name!r} already exists.", param="name", code="name_taken"
        )
    return Project.of(repo.create_project(session, body.name))


@router.get(PROJECT, operation_id="retrieve-project", response_model=Project)
def retrieve_project(project_id: str, admin: AdminDep, session: SessionDep) -> Project:
    return Project.of(_project(session, project_id))


@router.post(PROJECT + "/archive", operation_id="archive-project", response_model=Project)
def archive_project(
    project_id: str, admin: AdminDep, session: SessionDep, services: ServicesDep
) -> Project:
    """Archive a project: its keys are refused from the next request on; nothing is deleted."""
    project = Project.of(repo.archive_project(session, _project(session, project_id)))
    _commit_revocation(session, services)
    return project


@router.get(KEYS, operation_id="list-project-api-keys", response_model=ListProjectApiKeysResponse)
def list_keys(
    project_id: str,
    admin: AdminDep,
    session: SessionDep,
    after: After = None,
    limit: Limit = 20,
) -> ListProjectApiKeysResponse:
    project = _project(session, project_id)
    page = repo.list_keys(session, project.id, after=after, limit=limit)
    return ListProjectApiKeysResponse.of(page.items, project, page.has_more)


@router.get(
    KEYS + "/{api_key_id}", operation_id="retrieve-project-api-key", response_model=ProjectApiKey
)
def retrieve_key(
    project_id: str, api_key_id: str, admin: AdminDep, session: SessionDep
) -> ProjectApiKey:
    project = _project(session, project_id)
    return ProjectApiKey.of(_key(session, project, api_key_id), project)


@router.delete(
    KEYS + "/{api_key_id}",
    operation_id="delete-project-api-key",
    response_model=DeleteProjectApiKeyResponse,
)
def delete_key(
    project_id: str, api_key_id: str, admin: AdminDep, session: SessionDep, services: ServicesDep
) -> DeleteProjectApiKeyResponse:
    """Delete (revoke) a project's API key: refused from the next request on."""
    key = _key(session, _project(session, project_id), api_key_id)
    repo.delete_key(session, key)
    _commit_revocation(session, services)
    return DeleteProjectApiKeyResponse(id=api_key_id)


def _project(session: Session, project_id: str) -> ProjectRow:
    project = repo.get_project(session, project_id)
    if project is None:
        raise not_found("project", project_id, param="project_id")
    return project


def _key(session: Session, project: ProjectRow, api_key_id: str) -> ApiKeyRow:
    key = repo.get_key(session, api_key_id)
    if key is None or key.project_id != project.id:
        raise not_found("api_key", api_key_id, param="api_key_id")
    return key


def _commit_revocation(session: Session, services: ServicesDep) -> None:
    """Commit now, then record the revocation: remembered chat answers stop counting only
    once the database says no, so that none is renewed from the old state."""
    session.commit()
    services.chat_access.revoked()
