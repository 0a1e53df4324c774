"""`Runtime`: the start-up wiring every entry point opens (database, store, registry,
executor, services), built on first use and released by `close()`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect

from service.executors.local import LocalExecutor
from service.keys import project_repository as projects
from service.runtime import Runtime
from service.settings import TINY_MODEL_NAME, Settings


def _closed_connections(engine: Any) -> list[object]:
    closed: list[object] = []
    event.listen(engine, "close", lambda conn, record: closed.append(conn))
    return closed


def test_opens_a_migrated_sqlite_database_in_the_data_folder_and_closes_it(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with Runtime(settings) as runtime:
        engine = runtime.engine
        closed = _closed_connections(engine)
        assert (tmp_path / "data").is_dir()
        assert engine.url.render_as_string() == settings.resolved_database_url
        assert {"projects", "api_keys", "fine_tuning_jobs"} <= set(
            inspect(engine).get_table_names()
        )
        with runtime.sessions() as session, session.begin():
            key = projects.create_api_key(session, projects.get_or_create_project(session, "a"))
        with runtime.sessions() as session:
            assert projects.project_for_key(session, key) is not None
        assert runtime.sessions.kw["bind"] is engine
    assert closed, "leaving the runtime closes the pooled connections"


def test_builds_the_services_from_its_own_parts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chat_access_cache_seconds=5)
    runtime = Runtime(settings)
    services = runtime.services
    assert services is runtime.services  # built once
    assert services.settings is settings
    assert services.engine is runtime.engine and services.sessions is runtime.sessions
    assert services.store is runtime.store and services.registry is runtime.registry
    assert list(services.registry) == [TINY_MODEL_NAME]
    assert services.store.url == settings.resolved_object_store_url
    assert services.chat_access.ttl == 5 and services.chat_access.engine is runtime.engine
    assert services.serving.routes is services.adapters.routes
    assert services.serving.routes.supervisor is None

    closed = _closed_connections(runtime.engine)
    asyncio.run(runtime.aclose())  # as the API's lifespan does, in an event loop
    assert closed


def test_builds_only_what_is_asked_for(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"))
    assert list(runtime.registry) == [TINY_MODEL_NAME]
    runtime.close()  # nothing else was opened: no database, no data folder
    assert not (tmp_path / "data").exists()


def test_the_scheduler_runs_on_the_runtime_s_parts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", trainer_slots=2)
    with Runtime(settings) as runtime:
        ctx = runtime.scheduler().ctx
        assert ctx.sessions is runtime.sessions and ctx.store is runtime.store
        assert ctx.registry is runtime.registry and ctx.executor is runtime.executor
        assert isinstance(runtime.executor, LocalExecutor)
        assert runtime.executor.capacity == 2
