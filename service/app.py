"""The control plane's FastAPI app: `create_app(settings)`; nothing is built at import time."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from contracts.store import open_store
from service.api import chat, files, fine_tuning, internal, models
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.deps import Services
from service.errors import install_error_handlers
from service.models.access import ChatAccess
from service.models.routes import VllmRoutes
from service.models.warm_start import AdapterControl
from service.registry import load_registry
from service.schemas.common import ERROR_RESPONSES
from service.serving_client import ServingClient
from service.settings import Settings

if TYPE_CHECKING:
    from serving.supervisor import Supervisor

API_PREFIX = "/v1"


def build_services(settings: Settings, supervisor: Supervisor | None = None) -> Services:
    """Engine (migrated to head), session factory, object store, registry, and the clients
    of the vLLMs (configured URLs, else the local `supervisor`'s)."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    routes = VllmRoutes(settings.vllm_urls, supervisor)
    registry = load_registry(settings)
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        store=open_store(settings.resolved_object_store_url, settings.s3_endpoint_url),
        registry=registry,
        serving=ServingClient(
            routes,
            connect_timeout=settings.vllm_connect_timeout,
            read_timeout=settings.vllm_read_timeout,
        ),
        chat_access=ChatAccess(engine, registry, ttl=settings.chat_access_cache_seconds),
        adapters=AdapterControl(routes),
    )


class BackgroundScheduler:
    """The scheduler loop in a thread of the API process (`whetstone up`)."""

    def __init__(self, services: Services) -> None:
        from service.scheduler.runner import Scheduler

        self.scheduler = Scheduler(
            services.settings, services.sessions, services.store, registry=services.registry
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.scheduler.run_forever, args=(self._stop,), name="scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def drain(self) -> list[str]:
        """Stop the loop, then the running trainers (each saves a checkpoint while the API
        still answers); their jobs resume on the next start. Returns their ids."""
        self.stop()
        return self.scheduler.stop_attempts()


def create_app(
    settings: Settings | None = None,
    *,
    supervisor: Supervisor | None = None,
    run_scheduler: bool = False,
) -> FastAPI:
    """The app; `supervisor` (local vLLMs, `whetstone up`) is used, never started, here."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, supervisor)
        app.state.services = services
        # Background work that lives as long as the app: the scheduler (`whetstone up`).
        background = BackgroundScheduler(services) if run_scheduler else None
        app.state.background = background
        try:
            yield
        finally:
            if background is not None:
                background.stop()
            await services.serving.aclose()
            services.adapters.close()
            services.engine.dispose()

    app = FastAPI(
        title="Whetstone",
        version="0.1.0",
        summary="Self-hosted fine-tuning that speaks OpenAI's API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # One router per OpenAI resource.
    for router in (files.router, fine_tuning.router, models.router, chat.router):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(internal.router)  # the trainer's progress channel, not in the schema

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    _openapi_with_openai_errors(app)
    return app


def _openapi_with_openai_errors(app: FastAPI) -> None:
    """Drop FastAPI's 422 from the schema: validation errors answer 400 in OpenAI's shape."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
