"""What the scheduler's parts share: settings, database sessions, store, registry, executor."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

from contracts.store import ObjectStore
from service.executors import Executor
from service.hashing import secret_hash, secret_matches
from service.registry import BaseModelEntry
from service.settings import Settings

T = TypeVar("T")


@dataclass
class SchedulerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    registry: dict[str, BaseModelEntry]
    executor: Executor
    killed: set[str] = field(default_factory=set)
    """Handles this process already asked the executor to kill."""

    @property
    def on_postgres(self) -> bool:
        bind = self.sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"


def skip_locked(stmt: Select[T], on_postgres: bool) -> Select[T]:
    """Row locks that other scheduler replicas skip (Postgres); SQLite has one writer."""
    return stmt.with_for_update(skip_locked=True) if on_postgres else stmt


def new_attempt_token() -> tuple[str, str]:
    """A fresh per-attempt bearer token and the hash that is all the database keeps."""
    token = "wsat-" + secrets.token_urlsafe(32)
    return token, secret_hash(token)


def token_matches(token: str, token_hash: str | None) -> bool:
    return secret_matches(token, token_hash)
