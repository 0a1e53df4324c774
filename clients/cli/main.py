"""The `whetstone` command: files, jobs, models and chat over the SDK.

Extra command groups plug in through the `whetstone.cli` entry-point group: each entry
point is a callable `register(app: typer.Typer)` (the service adds `up` and `keys` so).
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from clients.sdk import APIConnectionError, APIError, APIStatusError, WhetstoneError

from . import files, jobs, models, webhooks
from .chat import chat
from .migrate import migrate
from .record import record
from .state import JsonFlag, State

app = typer.Typer(
    name="whetstone",
    help="Whetstone: fine-tune open models through an OpenAI-shaped API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(files.app, name="files")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.add_typer(webhooks.app, name="webhooks")
app.command()(chat)
app.command()(migrate)
app.command()(record)


@app.callback()
def root(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option(
            envvar="WHETSTONE_BASE_URL",
            help="API address; /v1 is added when missing.",
            show_default="http://127.0.0.1:8000",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="WHETSTONE_API_KEY", help="API key.", show_default="none")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    ctx.obj = State(base_url=base_url, api_key=api_key, json=json_out)
    ctx.call_on_close(ctx.obj.close)


def load_plugins(target: typer.Typer) -> None:
    """Let installed packages add command groups (`whetstone.cli` entry points)."""
    for entry in entry_points(group="whetstone.cli"):
        try:
            register = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name and entry.value.split(":")[0].startswith(exc.name):
                continue  # the providing package is not installed: nothing to add
            _warn(f"cannot load CLI plugin {entry.name} ({entry.value}): {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
            _warn(f"cannot load CLI plugin {entry.name} ({entry.value}): {exc}")
            continue
        register(target)


def _warn(message: str) -> None:
    Console(stderr=True, emoji=False, highlight=False).print(
        f"[yellow]warning:[/yellow] {escape(message)}"
    )


def explain(exc: WhetstoneError) -> str:
    """One line for a person: what went wrong and, for API errors, which field."""
    if isinstance(exc, APIStatusError):
        details = ", ".join(
            f"{name}: {value}"
            for name, value in (("param", exc.param), ("code", exc.code))
            if value
        )
        suffix = f" ({details})" if details else ""
        return f"{type(exc).__name__} [{exc.status_code}]: {exc.message}{suffix}"
    if isinstance(exc, APIConnectionError):
        return f"{exc.message} Is the server running? (--base-url / WHETSTONE_BASE_URL)"
    if isinstance(exc, APIError):
        return f"{type(exc).__name__}: {exc.message}"
    return str(exc)


def main() -> None:
    load_plugins(app)
    try:
        app()
    except WhetstoneError as exc:
        Console(stderr=True, emoji=False, highlight=False).print(
            f"[red]error:[/red] {escape(explain(exc))}"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
