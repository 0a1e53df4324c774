"""Server-side commands for the `whetstone` CLI (entry-point group `whetstone.cli`).

`register(app)` adds `keys create --project NAME | --admin`, `keys list`, `keys revoke
KEY_ID`, `server`, `up`, and `pull` to the client's `models` group (`whetstone models pull
NAME` / `--all`: download base models named by Hugging Face repository, `service.hub`); run
alone as
`python -m service.cli keys create --project NAME`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from service.registry import BaseModelEntry

# The `server` extra; without it (`pip install whetstone`: the CLI only) these commands
# are still listed, and say how to install what they need.
SERVER_MODULES = (
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pydantic_settings",
    "yaml",
    "huggingface_hub",
)
SERVER_EXTRA = "pip install 'whetstone[server]'"
REPORT_COLOUR = {"ok": "green", "warning": "yellow", "note": "blue"}

keys = typer.Typer(help="API keys.", no_args_is_help=True)

# The defaults are service.settings.Settings' (tests/integration/service/test_cli.py checks them);
# not read from it here, so that --help works without the server extra.
DataDir = Annotated[
    Path | None,
    typer.Option(help="Data folder (env WHETSTONE_DATA_DIR).", show_default="./.whetstone"),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="SQLAlchemy URL (env WHETSTONE_DATABASE_URL).",
        show_default="sqlite:///{data_dir}/whetstone.db",
    ),
]
BaseModelsFile = Annotated[
    Path | None,
    typer.Option(
        help="Base-model registry YAML (env WHETSTONE_BASE_MODELS_FILE).",
        show_default="the built-in whetstone-tiny",
    ),
]


def _flag(*names: str, help: str) -> Any:
    """An on/off option, off unless given (no `<bool>` value shown: it takes none)."""
    return typer.Option(*names, help=help, show_default="off", metavar="")


def require_server(command: str) -> None:
    """Exit with a one-line hint when the `server` extra is not installed."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        typer.echo(
            f"error: `whetstone {command}` runs the server side, which is not installed "
            f"(no {', '.join(missing)}): {SERVER_EXTRA}",
            err=True,
        )
        raise typer.Exit(1)


@keys.command("create")
def create_key(
    project: Annotated[
        str | None,
        typer.Option("--project", help="Project name; created if new.", show_default=False),
    ] = None,
    admin: Annotated[
        bool, _flag("--admin", help="An admin key (sk-admin-...) for the Admin API instead.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key for PROJECT (or, with --admin, an organization-level admin key for
    the Admin API) and print it. The key is shown only this once.

    The key is written to the database of the data folder (or --database-url): a server
    started from another folder does not know it. Says which one, and warns when a running
    `whetstone up` it can see uses a different database.
    """
    require_server("keys create")
    if (project is None) == (not admin):
        typer.echo("error: give --project NAME or --admin (one of them)", err=True)
        raise typer.Exit(2)
    from service.keys import admin_key_repository as admin_keys
    from service.keys import project_repository as projects
    from service.running import describe_database, key_database_report
    from service.runtime import Runtime

    settings = _settings(data_dir, database_url)
    with Runtime(settings) as runtime, runtime.sessions() as session, session.begin():
        if project is None:
            key = admin_keys.create_admin_key(session)
        else:
            key = projects.create_api_key(session, projects.get_or_create_project(session, project))
    typer.echo(key)
    owner = f"Project: {project}" if project is not None else "Admin key (organization)"
    typer.echo(f"{owner}. Store this key now: it cannot be shown again.", err=True)
    typer.echo(
        f"Key written to database {describe_database(settings.resolved_database_url)} "
        f"(data folder {settings.resolved_data_dir})",
        err=True,
    )
    for kind, line in key_database_report(settings):
        typer.secho(f"{kind}: {line}", err=True, fg=REPORT_COLOUR[kind])


@keys.command("list")
def list_keys(
    project: Annotated[
        str | None,
        typer.Option("--project", help="Only this project's keys.", show_default="every key"),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List API keys: id, the start of the key, owner, creation time (never the key)."""
    require_server("keys list")
    from service.keys import admin_key_repository as admin_keys
    from service.keys import project_repository as projects
    from service.keys.schemas import redacted
    from service.runtime import Runtime

    settings = _settings(data_dir, database_url)
    with Runtime(settings) as runtime, runtime.sessions() as session:
        names = {
            p.id: p
            for p in projects.list_projects(
                session, after=None, limit=1_000_000, include_archived=True
            ).items
        }
        project_id = None
        if project is not None:
            found = projects.find_project(session, project)
            if found is None:
                typer.echo(f"error: no project named {project!r}", err=True)
                raise typer.Exit(1)
            project_id = found.id
        rows: list[tuple[str, str, str, int]] = []
        if project is None:
            rows += [
                (k.id, redacted(k.prefix), "admin (organization)", k.created_at)
                for k in admin_keys.list_admin_keys(session)
            ]
        for k in projects.list_keys(session, project_id).items:
            owner = names[k.project_id]
            archived = " (archived)" if owner.archived_at is not None else ""
            rows.append((k.id, redacted(k.prefix), f"project {owner.name}{archived}", k.created_at))
    if not rows:
        typer.echo("no keys", err=True)
        return
    width = max(len(r[0]) for r in rows)
    for key_id, shown, whose, created in rows:
        typer.echo(f"{key_id:<{width}}  {shown:<18}  {_when(created)}  {whose}")


@keys.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="From `whetstone keys list`.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke (delete) an API key or admin key. Every API server of this data folder refuses
    it from its next request on."""
    require_server("keys revoke")
    from service.keys import admin_key_repository as admin_keys
    from service.keys import project_repository as projects
    from service.runtime import Runtime

    settings = _settings(data_dir, database_url)
    with Runtime(settings) as runtime:
        with runtime.sessions() as session, session.begin():
            project_key = projects.get_key(session, key_id)
            admin_key = None if project_key else admin_keys.get_admin_key(session, key_id)
            if project_key is not None:
                projects.delete_key(session, project_key)
            elif admin_key is not None:
                admin_keys.delete_admin_key(session, admin_key)
            else:
                typer.echo(f"error: no key {key_id} (see `whetstone keys list`)", err=True)
                raise typer.Exit(1)
        runtime.revocations.record()  # after the commit: see service.keys.revocations
    typer.echo(f"revoked {key_id}")


def _settings(data_dir: Path | None, database_url: str | None) -> Any:
    from service.settings import Settings

    overrides: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _when(seconds: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def serve() -> None:
    """Run the API server (host and port from WHETSTONE_HOST / WHETSTONE_PORT)."""
    require_server("server")
    from service.__main__ import main

    main()


def up(
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (env WHETSTONE_HOST).", show_default="127.0.0.1"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="API port (env WHETSTONE_PORT).", show_default="8000")
    ] = None,
    data_dir: DataDir = None,
    base_models_file: BaseModelsFile = None,
    database_url: DatabaseUrl = None,
    object_store_url: Annotated[
        str | None,
        typer.Option(
            help="file:///path or s3://bucket/prefix (env WHETSTONE_OBJECT_STORE_URL).",
            show_default="file://{data_dir}/objects",
        ),
    ] = None,
    trainer_slots: Annotated[
        int | None,
        typer.Option(help="Jobs training at once (env WHETSTONE_TRAINER_SLOTS).", show_default="1"),
    ] = None,
) -> None:
    """Start the whole stack on this machine: API, scheduler, trainer slots and vLLM."""
    require_server("up")
    from service.hub import HubError  # huggingface_hub: imported only by the commands using it
    from service.registry import RegistryError
    from service.settings import Settings
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
    try:
        run(Settings(**{k: v for k, v in overrides.items() if v is not None}))
    except (HubError, RegistryError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


def pull(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME", help="Base models of the registry.", show_default=False),
    ] = None,
    all_models: Annotated[
        bool, _flag("--all", help="Every base model of the registry with a `source`.")
    ] = False,
    force: Annotated[
        bool, _flag("--force", help="Ask the Hub again even if the folder is complete.")
    ] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q", help="No progress bars.")] = False,
    data_dir: DataDir = None,
    base_models_file: BaseModelsFile = None,
) -> None:
    """Download base models named by Hugging Face repository (their registry `source`).

    Each goes to its registry `path` (default: WHETSTONE_MODELS_DIR/NAME), once.

    Honours HF_TOKEN (gated models), HF_ENDPOINT (a mirror) and HF_HUB_OFFLINE.
    """
    require_server("models pull")
    from service.registry import RegistryError
    from service.runtime import Runtime
    from service.settings import Settings

    if bool(names) == all_models:
        typer.echo("error: name base models to pull, or give --all", err=True)
        raise typer.Exit(2)
    overrides: dict[str, Any] = {"data_dir": data_dir, "base_models_file": base_models_file}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        registry = Runtime(settings).registry  # the registry only: nothing to close
    except (RegistryError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    unknown = [n for n in names or [] if n not in registry]
    if unknown:
        where = settings.base_models_file or "the built-in registry"
        typer.echo(
            f"error: no base model {', '.join(unknown)} in {where}; "
            f"it has {', '.join(registry) or 'none'}",
            err=True,
        )
        raise typer.Exit(1)
    entries = list(registry.values()) if all_models else [registry[n] for n in names or []]
    failed = [
        e.name for e in entries if not _pull_one(e, named=not all_models, quiet=quiet, force=force)
    ]
    if failed:
        raise typer.Exit(1)


def _pull_one(entry: BaseModelEntry, *, named: bool, quiet: bool, force: bool) -> bool:
    """Pull one entry and say what happened; False when it failed."""
    from service.hub import HubError
    from service.hub import pull as pull_model

    if entry.source is None:
        if named:
            typer.echo(
                f"error: {entry.name} has no `source` in the registry: its files are the "
                f"local folder {entry.path}",
                err=True,
            )
            return False
        typer.echo(f"{entry.name}: local folder {entry.path}, nothing to pull")
        return True
    try:
        result = pull_model(entry, progress=not quiet, force=force)
    except HubError as e:
        typer.echo(f"error: {e}", err=True)
        return False
    done = "downloaded" if result.downloaded else "already complete"
    typer.echo(
        f"{entry.name}: {result.source} {done} in {result.path} (commit {result.commit[:12]})"
    )
    return True


def register(app: typer.Typer) -> None:
    """Add the server-side commands to the `whetstone` CLI.

    `pull` joins the client's `models` group (list, get, delete over the API) when `app`
    has one, so that `whetstone models pull` and `whetstone models list` sit together;
    otherwise (`python -m service.cli`) it gets a `models` group of its own.
    """
    app.add_typer(keys, name="keys")
    app.command("server")(serve)
    app.command("up")(up)
    models_group(app).command("pull")(pull)


def models_group(app: typer.Typer) -> typer.Typer:
    """The `models` group of `app`, added if it has none."""
    for group in app.registered_groups:
        if group.name == "models" and isinstance(group.typer_instance, typer.Typer):
            return group.typer_instance
    models = typer.Typer(help="Base models.", no_args_is_help=True)
    app.add_typer(models, name="models")
    return models


def main() -> None:
    app = typer.Typer(no_args_is_help=True)
    register(app)
    app()


if __name__ == "__main__":
    main()
