"""`whetstone files ...`: upload (validated locally first), list, get, delete, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from clients.sdk import Whetstone
from clients.sdk.types import FileObject

from . import output
from .state import JSON_HELP, State, state

app = typer.Typer(help="Upload and manage dataset files.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
PathArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A JSONL dataset.")]

FIELDS: list[output.Field] = [
    ("id", output.text),
    ("filename", output.text),
    ("purpose", output.text),
    ("bytes", output.text),
    ("status", output.text),
    ("created_at", output.timestamp),
]
COLUMNS = [
    ("ID", lambda f: f.id),
    ("FILENAME", lambda f: f.filename),
    ("PURPOSE", lambda f: f.purpose),
    ("BYTES", lambda f: f"{f.bytes:,}"),
    ("CREATED", lambda f: output.timestamp(f.created_at)),
]


def check(st: State, client: Whetstone, path: Path) -> bool:
    """Validate `path` locally; print every problem (a table, or JSON). True when clean."""
    report = client.files.validate(path)
    if report.ok:
        if not st.json:
            where = escape(str(path))
            st.err.print(f"[green]✓[/green] {where}: {report.examples} {report.format} examples")
        return True
    if st.json:
        problems = [{"line": e.line, "reason": e.reason} for e in report.errors]
        output.print_json(st, {"file": str(path), "ok": False, "problems": problems})
        return False
    table = Table(title=Text(f"{path}: {report.error_count} problem(s)", style="bold red"))
    table.add_column("LINE", justify="right")
    table.add_column("PROBLEM")
    for error in report.errors:
        table.add_row(output.text(error.line), Text(error.reason))
    st.out.print(table)
    return False


@app.command()
def upload(
    ctx: typer.Context,
    path: PathArg,
    purpose: Annotated[str, typer.Option(help="File purpose.")] = "fine-tune",
    validate: Annotated[bool, typer.Option(help="Check every line locally first.")] = True,
    json_out: JsonFlag = False,
) -> None:
    """Upload a dataset. Every line is checked locally first; a bad file is not sent."""
    st = state(ctx, json_out)
    client = st.client()
    if validate and purpose == "fine-tune" and not check(st, client, path):
        raise typer.Exit(1)
    uploaded = client.files.create(file=path, purpose=purpose)
    output.show_one(st, uploaded, FIELDS)


@app.command("validate")
def validate_command(ctx: typer.Context, path: PathArg, json_out: JsonFlag = False) -> None:
    """Check a dataset locally with the server's rules, without uploading it."""
    st = state(ctx, json_out)
    ok = check(st, st.client(), path)
    if st.json and ok:
        output.print_json(st, {"file": str(path), "ok": True, "problems": []})
    if not ok:
        raise typer.Exit(1)


@app.command("list")
def list_files(
    ctx: typer.Context,
    purpose: Annotated[str | None, typer.Option(help="Only files with this purpose.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List files (every page)."""
    st = state(ctx, json_out)
    files: list[FileObject] = list(st.client().files.list(purpose=purpose))
    output.show_many(st, files, COLUMNS)


@app.command()
def get(ctx: typer.Context, file_id: str, json_out: JsonFlag = False) -> None:
    """Show one file."""
    st = state(ctx, json_out)
    output.show_one(st, st.client().files.retrieve(file_id), FIELDS)


@app.command()
def delete(ctx: typer.Context, file_id: str, json_out: JsonFlag = False) -> None:
    """Delete a file."""
    st = state(ctx, json_out)
    deleted = st.client().files.delete(file_id)
    if st.json:
        output.print_json(st, output.dump(deleted))
    else:
        st.out.print(Text(f"deleted {deleted.id}"))
