"""Moved to `service.files.uploads`. The scheduler (`service.scheduler.runner`, being changed
in parallel) still imports its sweep from here; this re-export goes when that code is
updated."""

from service.files.uploads import sweep_all

__all__ = ["sweep_all"]
