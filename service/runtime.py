"""What a process opens at start-up, built in one place for every entry point.

`Runtime(settings)` holds the parts: the database (`engine`, migrated to head, and its
`sessions` factory), the object `store`, the base-model `registry`, the `executor`, the
`services` the API injects (`service.deps.Services`) and, on request, a `scheduler()` over
them. Each part is built on first use, so a command opens only what it reads (`keys create`
the database, `models pull` the registry) and nothing is built at import time. `close()`, or
leaving `with Runtime(...)`, releases what was built; the API's lifespan uses `async with`,
which also closes the vLLM connection pool (it belongs to the server's event loop).

The parts are built from one thread, at start-up: the API's lifespan and the commands take
what they need before anything runs concurrently.
"""

from __future__ import annotations

import logging
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contracts.store import ObjectStore
from contracts.store_url import open_store
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.executors import Executor, build_executor
from service.keys.revocations import Revocations
from service.registry import BaseModelEntry, load_registry
from service.settings import Settings

if TYPE_CHECKING:
    from service.deps import Services
    from service.models.vllms import VllmRoutes
    from service.scheduler.runner import Scheduler
    from serving.supervisor import Supervisor

STALE_TEMPORARY_SECONDS = 3600.0
"""How long a temporary object (local `.tmp-*` file, S3 multipart upload) must have been left
untouched before `clean_store()` takes it for the leftover of a crash and removes it."""
log = logging.getLogger(__name__)


class Runtime:
    """The process's database, store, registry, executor and services, built on first use.

    `supervisor` (local vLLMs, `whetstone up`) is what the services route chat completions
    and warm starts to when `WHETSTONE_VLLM_URLS` does not name a base model's vLLM; it is
    used, never started or stopped, here.
    """

    def __init__(self, settings: Settings, *, supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor

    @cached_property
    def engine(self) -> Engine:
        """The database engine, its schema migrated to head (the data folder made first)."""
        self.settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(self.settings.resolved_database_url)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(self.settings.resolved_object_store_url, self.settings.s3_endpoint_url)

    @cached_property
    def registry(self) -> dict[str, BaseModelEntry]:
        return load_registry(self.settings)

    @cached_property
    def revocations(self) -> Revocations:
        """Where access taken away is recorded for every process of this data folder."""
        return Revocations(self.settings.resolved_data_dir)

    @cached_property
    def executor(self) -> Executor:
        """Where trainer attempts run: local subprocesses (logs in the data folder) or
        Kubernetes Jobs, as `WHETSTONE_EXECUTOR` says."""
        return build_executor(self.settings, self.settings.resolved_data_dir)

    @cached_property
    def services(self) -> Services:
        """What the API's routes are given: the parts above and the clients of the vLLMs
        (configured URLs, else the supervisor's)."""
        # The API's clients (fastapi, aiohttp, httpx): imported by the processes that serve.
        from service.chat.serving_client import ServingClient
        from service.deps import Services
        from service.models.access import ChatAccess
        from service.models.warm_start import AdapterControl

        engine, registry = self.engine, self.registry
        routes = self.vllm_routes()
        return Services(
            settings=self.settings,
            engine=engine,
            sessions=self.sessions,
            store=self.store,
            registry=registry,
            serving=ServingClient(
                routes,
                connect_timeout=self.settings.vllm_connect_timeout,
                read_timeout=self.settings.vllm_read_timeout,
            ),
            chat_access=ChatAccess(
                engine,
                registry,
                ttl=self.settings.chat_access_cache_seconds,
                revocations=self.revocations,
            ),
            adapters=AdapterControl(routes),
        )

    def vllm_routes(self) -> VllmRoutes:
        """Where each base model's vLLM is, and the key its configured ones want."""
        from service.models.vllms import VllmRoutes

        key = self.settings.vllm_api_key
        return VllmRoutes(
            self.settings.vllm_urls, self.supervisor, key.get_secret_value() if key else None
        )

    def scheduler(self) -> Scheduler:
        """A scheduler over this runtime's sessions, store, registry and executor."""
        from service.scheduler.runner import Scheduler

        return Scheduler(
            self.settings,
            self.sessions,
            self.store,
            registry=self.registry,
            executor=self.executor,
            routes=self.vllm_routes(),
        )

    def clean_store(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Remove the temporary objects crashed uploads left in the store (the API does at
        start-up); a store that refuses (no permission to list uploads) is logged, not fatal."""
        try:
            removed = self.store.remove_stale_temporaries(older_than)
        except Exception as e:  # the API must start anyway
            log.warning("could not clean stale temporary objects from the store: %s", e)
            return 0
        if removed:
            log.info("removed %d stale temporary object(s) from the store", removed)
        self.sweep_uploads()
        return removed

    def sweep_uploads(self, batch: int = 100) -> int:
        """Expire the uploads past their hour and remove the parts of every ended upload
        (`service.files.uploads.sweep`); a failure is logged, not fatal."""
        from service.files.uploads import sweep_batch

        swept = 0
        try:
            while True:
                n = sweep_batch(self.sessions, self.store, limit=batch)
                swept += n
                if n < batch:
                    break
        except Exception as e:  # the API must start anyway
            log.warning("could not sweep ended uploads: %s", e)
        if swept:
            log.info("swept %d ended upload(s) and their parts", swept)
        return swept

    def _built(self, part: str) -> bool:
        return part in self.__dict__  # where `cached_property` keeps a built part

    def close(self) -> None:
        """Release what was built (warm-start client and threads, database connections);
        the runtime can open them again afterwards."""
        if self._built("services"):
            self.__dict__.pop("services").adapters.close()
        self.__dict__.pop("sessions", None)
        if self._built("engine"):
            self.__dict__.pop("engine").dispose()

    async def aclose(self) -> None:
        """`close()`, after the vLLM connection pool (from the event loop it was made in)."""
        if self._built("services"):
            await self.services.serving.aclose()
        self.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
