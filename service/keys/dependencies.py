"""`Authorization: Bearer <key>` -> the caller: a project (its API key) or the organization
(an admin key, `sk-admin-...`, for the Admin API). No key or an unknown one is a 401; a key
of the wrong kind for the route is a 403.

Nothing about a key is cached here: every request looks its key up, so a revoked key or an
archived project is refused on the very next request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from service import logs
from service.db.tables import AdminApiKey, Project
from service.deps import Services, ServicesDep
from service.errors import Authentication, PermissionDenied
from service.keys import admin_key_repository as admin_keys
from service.keys import project_repository as projects
from service.keys.checks import refused_key, unknown_key
from service.limits import mark_verified

_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Authentication(_NO_KEY, code=None)
    return key.strip()


async def current_project(request: Request, services: ServicesDep) -> Project:
    """The caller's project, looked up in a short session of its own, so that a long
    request (a large upload) holds no database connection while it streams. Async, so that
    the project it sets for the request's log lines (`service.logs.project`) stays set."""
    key = bearer_key(request)
    project = await run_in_threadpool(_project_for_key, services, key)
    mark_verified(request, key)
    logs.project.set(project.id)
    return project


def _project_for_key(services: Services, key: str) -> Project:
    with services.sessions() as session:
        project = projects.project_for_key(session, key)
        if project is None:
            raise refused_key(session, key)
    if project.archived_at is not None:
        raise Authentication(
            f"The project of this API key ({project.id}) is archived: its keys no longer work."
        )
    return project


def current_admin(request: Request, services: ServicesDep) -> AdminApiKey:
    """The caller's admin key; a project key is a 403 (it lacks the management scopes)."""
    key = bearer_key(request)
    with services.sessions() as session:
        admin = admin_keys.admin_key_for(session, key)
        if admin is None and projects.project_for_key(session, key) is not None:
            raise PermissionDenied(
                "You have insufficient permissions for this operation. Missing scopes: "
                "api.management.read, api.management.write. This endpoint requires an admin "
                "API key (sk-admin-..., made with `whetstone keys create --admin`), not a "
                "project API key.",
                code="insufficient_permissions",
            )
    if admin is None:
        raise unknown_key(key)
    mark_verified(request, key)
    return admin


ProjectDep = Annotated[Project, Depends(current_project)]
AdminDep = Annotated[AdminApiKey, Depends(current_admin)]
