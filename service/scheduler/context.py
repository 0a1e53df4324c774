"""What the scheduler's parts share: settings, database sessions, store, registry, executor."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from contracts.store import ObjectStore
from service.executors import Executor
from service.registry import BaseModelEntry
from service.settings import Settings


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
