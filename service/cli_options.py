"""What the server-side commands (`service.cli`, `service.keys.cli`) share: the check that
the `server` extra is installed, the options naming the data folder, the database and the
registry, and on/off flags. Only typer here: `whetstone --help` loads these modules without
the server extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any

import typer

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


def flag(*names: str, help: str) -> Any:
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
