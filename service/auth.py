"""`Authorization: Bearer <key>` -> the caller's project; anything else is a 401."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.db.repositories import projects
from service.db.tables import Project
from service.deps import ServicesDep
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


def current_project(request: Request, services: ServicesDep) -> Project:
    """The caller's project, looked up in a short session of its own, so that a long
    request (a large upload) holds no database connection while it streams."""
    key = bearer_key(request)
    with services.sessions() as session:
        project = projects.project_for_key(session, key)
    if project is None:
        raise unknown_key(key)
    return project


def unknown_key(key: str) -> Authentication:
    return Authentication(f"Incorrect API key provided: {_masked(key)}.")


ProjectDep = Annotated[Project, Depends(current_project)]
