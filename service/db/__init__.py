"""Persistence: ORM tables, engine factory, Alembic migrations, repositories."""
