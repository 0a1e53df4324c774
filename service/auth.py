"""Moved to `service.keys.dependencies`. The fine-tuning routes (`service.api.fine_tuning`,
`service.api.internal`, being changed in parallel) still import it from here; this
re-export goes when they move into their slice."""

from service.keys.dependencies import AdminDep, ProjectDep, bearer_key

__all__ = ["AdminDep", "ProjectDep", "bearer_key"]
