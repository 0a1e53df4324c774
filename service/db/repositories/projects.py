"""Moved to `service.keys.project_repository`. The fine-tuning code and its tests (being
changed in parallel) still import it from here; this re-export goes when they move into
their slice."""

from service.keys.project_repository import (
    KEY_PREFIX,
    archive_project,
    create_api_key,
    create_project,
    delete_key,
    find_project,
    get_key,
    get_or_create_project,
    get_project,
    list_keys,
    list_projects,
    lock_project,
    project_for_key,
)

__all__ = [
    "KEY_PREFIX",
    "archive_project",
    "create_api_key",
    "create_project",
    "delete_key",
    "find_project",
    "get_key",
    "get_or_create_project",
    "get_project",
    "list_keys",
    "list_projects",
    "lock_project",
    "project_for_key",
]
