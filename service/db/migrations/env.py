"""Alembic environment: runs on the engine handed in by `service.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from service.db.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through service.db.migrate.upgrade(engine)")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
