"""`Authorization: Bearer <key>` -> the caller's project; anything else is a 401."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from service import logs
from service.db.repositories import projects
from service.db.tables import Project
from service.deps import Services, ServicesDep
from service.errors import Authentication

_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def _masked(key: str) -> str:
    return f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"


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
    if project is None:
        raise unknown_key(key)
    logs.project.set(project.id)
    return project


def _project_for_key(services: Services, key: str) -> Project | None:
    with services.sessions() as session:
        return projects.project_for_key(session, key)


def unknown_key(key: str) -> Authentication:
    return Authentication(f"Incorrect API key provided: {_masked(key)}.")


ProjectDep = Annotated[Project, Depends(current_project)]
