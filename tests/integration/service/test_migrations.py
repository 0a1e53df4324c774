"""Alembic migrations build exactly the ORM's schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from service.db.engine import make_engine
from service.db.migrate import upgrade
from service.db.tables import Base


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    return make_engine(request.getfixturevalue("postgres_url"))


def test_upgrade_head_matches_the_orm_and_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)  # a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"ORM tables and migrations disagree: {diff}"
    assert {"projects", "api_keys", "files"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
