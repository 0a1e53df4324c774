"""Server-side commands for the `whetstone` CLI (entry-point group `whetstone.cli`).

`register(app)` adds `keys create --project NAME` and `server`; run alone as
`python -m service.cli keys create --project NAME`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.repositories import projects
from service.settings import Settings

keys = typer.Typer(help="API keys.", no_args_is_help=True)


@keys.command("create")
def create_key(
    project: Annotated[str, typer.Option("--project", help="Project name; created if new.")],
) -> None:
    """Create an API key for PROJECT and print it. The key is shown only this once."""
    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            row = projects.get_or_create_project(session, project)
            key = projects.create_api_key(session, row)
    finally:
        engine.dispose()
    typer.echo(key)
    typer.echo(f"Project: {project}. Store this key now: it cannot be shown again.", err=True)


def serve() -> None:
    """Run the API server (host and port from WHETSTONE_HOST / WHETSTONE_PORT)."""
    from service.__main__ import main

    main()


def up(
    host: Annotated[str | None, typer.Option(help="Bind address [env WHETSTONE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="API port [env WHETSTONE_PORT].")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data folder [env WHETSTONE_DATA_DIR].")
    ] = None,
    base_models_file: Annotated[
        Path | None,
        typer.Option(help="Base-model registry YAML [env WHETSTONE_BASE_MODELS_FILE]."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env WHETSTONE_DATABASE_URL].")
    ] = None,
    object_store_url: Annotated[
        str | None,
        typer.Option(help="file:///path or s3://bucket/prefix [env WHETSTONE_OBJECT_STORE_URL]."),
    ] = None,
    trainer_slots: Annotated[
        int | None, typer.Option(help="Jobs training at once [env WHETSTONE_TRAINER_SLOTS].")
    ] = None,
) -> None:
    """Start the whole stack on this machine: API, scheduler, trainer slots and vLLM."""
    from service.up import run

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "base_models_file": base_models_file,
        "database_url": database_url,
        "object_store_url": object_store_url,
        "trainer_slots": trainer_slots,
    }
    run(Settings(**{k: v for k, v in overrides.items() if v is not None}))


def register(app: typer.Typer) -> None:
    """Add the server-side commands to the `whetstone` CLI."""
    app.add_typer(keys, name="keys")
    app.command("server")(serve)
    app.command("up")(up)


def main() -> None:
    app = typer.Typer(no_args_is_help=True)
    register(app)
    app()


if __name__ == "__main__":
    main()
