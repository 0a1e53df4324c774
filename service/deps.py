"""What routes get injected: the per-process services built in `create_app`'s lifespan.

`Services` is created once at start-up (`service.runtime.Runtime.services`) and kept on
`app.state.services`; routes reach it only through these dependencies, so tests can build
an app with any settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contracts.store import ObjectStore
from service.chat.serving_client import ServingClient
from service.models.access import ChatAccess
from service.models.warm_start import AdapterControl
from service.registry import BaseModelEntry
from service.settings import Settings


@dataclass
class Services:
    """Everything a request may need that outlives it."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    registry: dict[str, BaseModelEntry]
    serving: ServingClient  # chat completions to the vLLM of each base model
    chat_access: ChatAccess  # which key may chat with which model
    adapters: AdapterControl  # warm start on job success, unload on model deletion


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_settings(services: Annotated[Services, Depends(get_services)]) -> Settings:
    return services.settings


def get_store(services: Annotated[Services, Depends(get_services)]) -> ObjectStore:
    return services.store


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    """One session per request; the request boundary commits (or rolls back on error)."""
    with services.sessions() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
# `scope="function"`: commit before the response is sent, so a client that sees a 200 sees
# the change in its next request.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
