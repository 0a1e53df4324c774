"""The control plane's FastAPI app: `create_app(settings)`; nothing is built at import time."""

from __future__ import annotations

import copy
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from service import metrics
from service.body_limits import BodyLimitMiddleware, BodyLimits
from service.chat import routes as chat
from service.errors import install_error_handlers
from service.files import routes as files
from service.files import upload_routes as uploads
from service.fine_tuning import internal_routes as internal
from service.fine_tuning import routes as fine_tuning
from service.graders import routes as graders
from service.keys import routes as organization
from service.limits import RateLimiter, RateLimitMiddleware
from service.models import permission_routes as checkpoint_permissions
from service.models import routes as models
from service.request_ids import RequestIdMiddleware
from service.runtime import Runtime
from service.schemas.common import ERROR_RESPONSES
from service.settings import Settings
from service.ui import mount_ui
from service.webhooks import routes as webhooks

if TYPE_CHECKING:
    from service.scheduler.runner import Scheduler
    from serving.supervisor import Supervisor

API_PREFIX = "/v1"


class BackgroundScheduler:
    """The scheduler loop in a thread of the API process (`whetstone up`)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
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
        async with Runtime(settings, supervisor=supervisor) as runtime:
            app.state.services = runtime.services
            runtime.clean_store()  # what uploads cut short by a crash left in the store
            # Background work that lives as long as the app: the scheduler (`whetstone up`).
            background = BackgroundScheduler(runtime.scheduler()) if run_scheduler else None
            app.state.background = background
            metrics_server = None
            if settings.metrics_port is not None:
                metrics_server = metrics.MetricsServer(
                    metrics_registry, settings.host, settings.metrics_port, settings.metrics_token
                )
            try:
                yield
            finally:
                if metrics_server is not None:
                    metrics_server.stop()
                if background is not None:
                    background.stop()

    app = FastAPI(
        title="Whetstone",
        version="0.1.0",
        summary="Self-hosted fine-tuning that speaks OpenAI's API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Outermost last: every response gets its x-request-id, the rate limit's 429 included.
    # Innermost: bodies capped, and refused without a known key, before any route reads them.
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits.of(settings))
    metrics_registry = metrics.instrument(
        app, settings.metrics_token, route=settings.metrics_port is None, host=settings.host
    )
    if settings.rate_limit_requests_per_minute > 0:
        limiter = RateLimiter(settings.rate_limit_requests_per_minute, settings.rate_limit_burst)
        app.state.rate_limiter = limiter  # authentication tells it which keys are real
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(RequestIdMiddleware)
    # One router per OpenAI resource.
    for router in (files.router, fine_tuning.router, models.router, chat.router, uploads.router):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(graders.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    # Whetstone's extension: the endpoints told when jobs end.
    app.include_router(webhooks.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    # The Admin API (admin keys): checkpoint permissions, projects and their keys.
    for router in (checkpoint_permissions.router, organization.router):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(internal.router)  # the trainer's progress channel, not in the schema
    mount_ui(app)  # `/` -> `/ui/`: the web dashboard, a client of the API above

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    _openapi_with_openai_errors(app)
    return app


_TOO_LARGE = {
    "description": "The body is over this route's cap (`WHETSTONE_MAX_JSON_BODY_BYTES`, "
    "`WHETSTONE_MAX_CHAT_BODY_BYTES`, `WHETSTONE_MAX_FILE_BYTES`): refused before it is read.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}


def _openapi_with_openai_errors(app: FastAPI) -> None:
    """Drop FastAPI's 422 from the schema: validation errors answer 400 in OpenAI's shape;
    every operation with a body may answer 413."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
                    if "requestBody" in operation:  # service.body_limits
                        operation["responses"].setdefault("413", copy.deepcopy(_TOO_LARGE))
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
