"""`whetstone migrate`: move fine-tuning jobs and their files from an OpenAI account (or
Azure OpenAI, or another Whetstone) to this Whetstone, then print what it did."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.text import Text

from . import output
from .migration import Migration, Row, parse_model_map
from .source import SourceAuth, source_client
from .state import JsonFlag, State, flag, state

STATUS_STYLE = {"created": "green", "exists": "cyan", "would create": "blue"}


def _status(value: str) -> Text:
    if value.startswith("failed"):
        return Text(value, style="red")
    if value.startswith("skipped"):
        return Text(value, style="yellow")
    return Text(value, style=STATUS_STYLE.get(value, ""))


COLUMNS = ["SOURCE JOB", "MODEL", "FILES", "NEW JOB", "STATUS", "NOTES"]


def _cells(row: Row) -> list[output.Cell]:
    return [
        row.job,
        f"{row.source_model} -> {row.dest_model or '?'}",
        "\n".join(row.files) or "-",
        output.text(row.new_job),
        _status(row.status),
        "\n".join(row.notes) or "-",
    ]


def _progress(st: State, row: Row) -> None:
    """One line on stderr per job as it is done (the table comes at the end)."""
    if not st.json:
        st.err.print(Text.assemble(f"{row.job}: ", _status(row.status)))


def migrate(
    ctx: typer.Context,
    source_base_url: Annotated[
        str,
        typer.Option(
            envvar="WHETSTONE_SOURCE_BASE_URL",
            help="The source's API address: https://api.openai.com/v1, an Azure OpenAI "
            "resource (https://NAME.openai.azure.com, /openai/v1 is added), or a Whetstone.",
        ),
    ],
    source_api_key: Annotated[
        str, typer.Option(envvar="WHETSTONE_SOURCE_API_KEY", help="The source's API key.")
    ],
    model_map: Annotated[
        list[str],
        typer.Option(
            help="SOURCE_MODEL=DESTINATION_MODEL, e.g. gpt-4o-mini-2024-07-18=qwen2.5-7b-"
            "instruct; repeat it. A job on a model without one is listed and skipped."
        ),
    ],
    jobs: Annotated[
        list[str] | None,
        typer.Option(
            "--jobs",
            help="Only these source jobs (repeat it); they move even when failed or cancelled.",
            show_default="every job but the failed and cancelled ones",
        ),
    ] = None,
    source_auth: Annotated[
        SourceAuth,
        typer.Option(
            help="Header of the source's key: Bearer, or Azure's api-key; auto: "
            "api-key for Azure host names."
        ),  # fmt: skip
    ] = SourceAuth.auto,
    dry_run: Annotated[
        bool, flag("--dry-run", help="Show what would be done; change nothing.")
    ] = False,
    evaluate: Annotated[
        bool,
        flag(
            "--evaluate",
            help="Replay each job's validation prompts on its source model (temperature 0) "
            "and record the answers with the new job (metadata source_answers_file, "
            "source_model).",
        ),
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Move fine-tuning jobs here from OpenAI: files copied byte for byte, each job made
    again on its mapped base model with the same method, hyperparameters, suffix and seed,
    metadata migrated_from = the source job. Running it again adds nothing new."""
    st = state(ctx, json_out)
    try:
        mapping = parse_model_map(model_map)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model-map") from exc
    with source_client(source_base_url, source_api_key, source_auth) as source:
        migration = Migration(source, st.client(), mapping, dry_run=dry_run, evaluate=evaluate)
        rows = migration.run(jobs or [], done=lambda row: _progress(st, row))
    if st.json:
        output.print_json(st, [asdict(row) for row in rows])
    else:
        title = "migrate (dry run: nothing changed)" if dry_run else "migrate"
        output.show_table(st, COLUMNS, [_cells(row) for row in rows], title=title)
        if not rows:
            st.err.print("[dim](no fine-tuning jobs in the source account)[/dim]")
    if any(row.failed for row in rows):
        raise typer.Exit(1)
