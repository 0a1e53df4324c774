"""`whetstone files ...`: upload (validated locally first), list, get, download, delete,
validate."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from clients.sdk import Whetstone
from clients.sdk.types import FileObject

from . import output
from .state import JsonFlag, State, flag, state

app = typer.Typer(help="Upload, download and manage files.", no_args_is_help=True)

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
    ("CREATED", lambda f: output.minute(f.created_at)),
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
    output.show_table(
        st,
        ["LINE", "PROBLEM"],
        [[output.text(error.line), error.reason] for error in report.errors],
        title=Text(f"{path}: {report.error_count} problem(s)", style="bold red"),
    )
    return False


@app.command()
def upload(
    ctx: typer.Context,
    path: PathArg,
    purpose: Annotated[str, typer.Option(help="File purpose.", show_default=True)] = "fine-tune",
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
    purpose: Annotated[
        str | None, typer.Option(help="Only files with this purpose.", show_default="any")
    ] = None,
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


def _own_name(filename: str, file_id: str) -> str:
    """The file's own name, without any folders (never `..`); its id when it has none."""
    name = Path(filename.replace("\\", "/")).name
    return name if name not in ("", ".", "..") else file_id


@app.command()
def download(
    ctx: typer.Context,
    file_id: Annotated[str, typer.Argument(help="The file's id (file-...).")],
    output_path: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write it; a folder: the file's own name in it.",
            show_default="./FILENAME, the file's own name",
        ),
    ] = None,
    force: Annotated[bool, flag("--force", help="Replace the target file if it exists.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Download a file's content (e.g. a job's step_metrics.csv), streamed to disk.

    Refuses to replace an existing file unless --force; a download that fails leaves
    nothing behind.
    """  # fmt: skip
    st = state(ctx, json_out)
    client = st.client()
    if output_path is None or output_path.is_dir():
        name = _own_name(client.files.retrieve(file_id).filename, file_id)
        target = Path(name) if output_path is None else output_path / name
    else:
        target = output_path
    if target.exists() and not force:
        st.err.print(
            f"[red]error:[/red] {escape(str(target))} exists; --force replaces it, "
            "-o PATH writes elsewhere"
        )
        raise typer.Exit(1)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        client.files.download(file_id, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    size = target.stat().st_size
    if st.json:
        output.print_json(st, {"id": file_id, "path": str(target), "bytes": size})
    else:
        st.out.print(Text(f"saved {file_id} to {target} ({size:,} bytes)"))


@app.command()
def delete(ctx: typer.Context, file_id: str, json_out: JsonFlag = False) -> None:
    """Delete a file."""
    st = state(ctx, json_out)
    deleted = st.client().files.delete(file_id)
    if st.json:
        output.print_json(st, output.dump(deleted))
    else:
        st.out.print(Text(f"deleted {deleted.id}"))
