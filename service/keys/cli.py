"""`whetstone keys create --project NAME | --admin`, `keys list`, `keys revoke KEY_ID`: API
keys and admin keys, written to the database directly (no server needs to run), added to
the CLI by `service.cli.register`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli_options import DatabaseUrl, DataDir, flag, require_server

REPORT_COLOUR = {"ok": "green", "warning": "yellow", "note": "blue"}

keys = typer.Typer(help="API keys.", no_args_is_help=True)


@keys.command("create")
def create_key(
    project: Annotated[
        str | None,
        typer.Option("--project", help="Project name; created if new.", show_default=False),
    ] = None,
    admin: Annotated[
        bool, flag("--admin", help="An admin key (sk-admin-...) for the Admin API instead.")
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
