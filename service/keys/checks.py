"""What a key is, asked of the database: known or not, and why one is refused. No FastAPI
here, so the chat route's remembered answers (`service.models.access`) ask the same
questions as the request dependencies (`service.keys.dependencies`) without importing
them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.errors import Authentication, PermissionDenied
from service.keys import admin_key_repository as admin_keys
from service.keys import project_repository as projects


def _masked(key: str) -> str:
    return f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"


def known_key(session: Session, key: str) -> bool:
    """Whether `key` is a project's key or an admin key (archived or not: the routes say)."""
    return (
        projects.project_for_key(session, key) is not None
        or admin_keys.admin_key_for(session, key) is not None
    )


def refused_key(session: Session, key: str) -> Authentication | PermissionDenied:
    """Why a key that is no project's key is refused: an admin key is the wrong kind (403),
    anything else is unknown (401)."""
    if key.startswith(admin_keys.ADMIN_KEY_PREFIX) and admin_keys.admin_key_for(session, key):
        return PermissionDenied(
            "Admin API keys can only be used with the Admin API (/v1/organization/... and the "
            "checkpoint permissions). Use a project API key for this endpoint.",
            code="insufficient_permissions",
        )
    return unknown_key(key)


def unknown_key(key: str) -> Authentication:
    return Authentication(f"Incorrect API key provided: {_masked(key)}.")
