"""Server-side commands for the `whetstone` CLI (entry-point group `whetstone.cli`).

`register(app)` adds `keys create --project NAME | --admin`, `keys list`, `keys revoke
KEY_ID` (`service.keys.cli`), `server`, `up`, and `pull` to the client's `models` group
(`whetstone models pull NAME` / `--all`: download base models named by Hugging Face
repository, `service.hub`); run alone as `python -m service.cli keys create --project NAME`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli_options import BaseModelsFile, DatabaseUrl, DataDir, flag, require_server
from service.keys.cli import keys

if TYPE_CHECKING:
    from service.registry import BaseModelEntry


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
        bool, flag("--all", help="Every base model of the registry with a `source`.")
    ] = False,
    force: Annotated[
        bool, flag("--force", help="Ask the Hub again even if the folder is complete.")
    ] = False,
    quiet: Annotated[bool, flag("--quiet", "-q", help="No progress bars.")] = False,
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
