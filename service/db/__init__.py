"""Persistence: ORM tables, engine factory, Alembic migrations, the cursor pagination the
repositories share. Each domain's SQL is in its own folder (`repository.py`,
`*_repository.py`)."""
