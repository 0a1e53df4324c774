"""`whetstone migrate`: move fine-tuning jobs and their files from an OpenAI account (or
Azure OpenAI, or another Whetstone) to this Whetstone, then print what it did."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from . import output
from .distill import Distiller
from .migration import Migration, Row, parse_model_map
from .migration_aliases import PENDING, AliasPlan, wait_and_point
from .record import RETRIES
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
        "\n".join(row.notes + ([row.alias.line()] if row.alias else [])) or "-",
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
            help="Replay each job's validation prompts (without a validation file: those of "
            "the training lines held out for the evaluation) on its source model (temperature "
            "0) and record the answers with the new job (metadata source_answers_file, "
            "source_model).",
        ),
    ] = False,
    aliases: Annotated[
        bool,
        typer.Option(
            "--aliases/--no-aliases",
            help="Make each source job's fine_tuned_model name an alias of the model its new "
            "job makes here, once that job succeeds (a rerun sets those still pending).",
        ),
    ] = True,
    wait: Annotated[
        bool,
        flag(
            "--wait",
            help="Stay until every migrated job has ended, and set its alias then "
            "(Ctrl-C stops waiting; a rerun sets the rest).",
        ),
    ] = False,
    distill: Annotated[
        bool,
        flag(
            "--distill",
            help="Train each supervised job on its source model's answers to the job's "
            "prompts (recorded as `whetstone record` does) instead of its file's answers; "
            "metadata distilled_from, distill_prompts. Pick the jobs with --jobs.",
        ),
    ] = False,
    distill_prompts: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="With --distill: the prompts (chat JSONL) of a job whose files are gone "
            "from the source.",
            show_default="none",
        ),  # fmt: skip
    ] = None,
    distill_dir: Annotated[
        Path,
        typer.Option(
            help="With --distill: where answers are recorded before the upload "
            "(a rerun continues from them)."
        ),  # fmt: skip
    ] = Path("whetstone-distill"),
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="With --distill: requests in flight at once.")
    ] = 4,
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
    retries = RETRIES if distill else None
    with source_client(source_base_url, source_api_key, source_auth, retries) as source:
        distiller = (
            Distiller(source, st.client(), distill_dir, distill_prompts, concurrency)
            if distill
            else None
        )
        migration = Migration(
            source, st.client(), mapping, dry_run=dry_run, evaluate=evaluate, aliases=aliases,
            distiller=distiller,
        )  # fmt: skip
        rows = migration.run(jobs or [], done=lambda row: _progress(st, row))
    if wait and not dry_run:
        _wait(st, rows)
    if st.json:
        output.print_json(st, [asdict(row) for row in rows])
    else:
        title = "migrate (dry run: nothing changed)" if dry_run else "migrate"
        output.show_table(st, COLUMNS, [_cells(row) for row in rows], title=title)
        if not rows:
            st.err.print("[dim](no fine-tuning jobs in the source account)[/dim]")
    if any(row.failed for row in rows):
        raise typer.Exit(1)


def _wait(st: State, rows: list[Row]) -> None:
    """Wait for the migrated jobs whose alias is pending, and point each alias as its job
    ends (one line on stderr each)."""
    pending = {r.new_job: r for r in rows if r.new_job and r.alias and r.alias.status == PENDING}
    if not pending:
        return

    def ended(job_id: str, plan: AliasPlan) -> None:
        pending[job_id].alias = plan
        if not st.json:
            st.err.print(Text(f"{job_id}: {plan.line()}"))

    if not st.json:
        st.err.print(f"waiting for {len(pending)} new job(s) to end (Ctrl-C stops waiting)")
    names = {job_id: row.alias.name for job_id, row in pending.items() if row.alias}
    try:
        wait_and_point(st.client(), names, ended=ended)
    except KeyboardInterrupt:
        st.err.print("stopped waiting: run whetstone migrate again to set the pending aliases")
