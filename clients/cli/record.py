"""`whetstone record`: a model answers a file of prompts, and its answers become a training
file (`recording` has the rules: prompts, resuming, the token estimate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from contracts import formats

from . import output
from .recording import PromptError, Recorder, estimate_tokens, read_prompts, recorded, still_to_ask
from .source import SourceAuth, source_client
from .state import JsonFlag, State, flag, state

RETRIES = 8  # a rate-limited source is waited out (`retry-after`), not given up on


def record(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="The model that answers, as the source names it.")],
    prompts: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Chat lines (JSONL); each line's final assistant message, if any, is "
            "replaced by the model's answer.",
        ),  # fmt: skip
    ],
    out: Annotated[
        Path, typer.Option("-o", "--output", dir_okay=False, help="The training file written.")
    ],
    source_base_url: Annotated[
        str,
        typer.Option(
            envvar="WHETSTONE_SOURCE_BASE_URL",
            help="The OpenAI-compatible API of the model: https://api.openai.com/v1, Azure "
            "OpenAI, a Whetstone, a vLLM.",
        ),
    ],
    source_api_key: Annotated[
        str, typer.Option(envvar="WHETSTONE_SOURCE_API_KEY", help="The source's API key.")
    ],
    source_auth: Annotated[
        SourceAuth, typer.Option(help="Header of the source's key (as `whetstone migrate`).")
    ] = SourceAuth.auto,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Requests in flight at once.")
    ] = 4,
    temperature: Annotated[
        float | None, typer.Option(help="Sent with each request.", show_default="the source's")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Sent with each request.", show_default="the source's")
    ] = None,
    dry_run: Annotated[
        bool, flag("--dry-run", help="Count the prompts and their tokens; send nothing.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Ask a model every prompt of a file and write its answers as a training file. Run it
    again after a crash or Ctrl-C: prompts already answered in the output are not asked
    again."""
    st = state(ctx, json_out)
    try:
        asked = recorded(out)
    except PromptError as exc:
        raise typer.BadParameter(str(exc), param_hint="--output") from exc
    try:
        todo = still_to_ask(read_prompts(prompts), asked)
    except PromptError as exc:
        raise typer.BadParameter(str(exc), param_hint="--prompts") from exc
    done = sum(asked.values())
    tokens = estimate_tokens(todo)
    st.err.print(
        f"{len(todo):,} prompts to ask {model} ({done:,} already answered in {out}), "
        f"about {tokens:,} prompt tokens (estimated: text characters / 4, + 4 a message)"
    )
    if dry_run:
        _report(st, {"to_ask": len(todo), "answered_before": done, "prompt_tokens": tokens})
        return
    params = {"temperature": temperature, "max_tokens": max_tokens}
    with (
        source_client(source_base_url, source_api_key, source_auth, RETRIES) as source,
        Progress(
            TextColumn("recording"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=st.err, disable=st.json,
        ) as bar,
    ):  # fmt: skip
        task = bar.add_task("record", total=len(todo))
        recorder = Recorder(
            source, model, out, concurrency,
            {k: v for k, v in params.items() if v is not None},
            on_answer=lambda _: bar.advance(task),
        )  # fmt: skip
        outcome = recorder.run(todo)
    check = formats.check_file(out) if out.exists() else None
    _report(st, {
        "answered": outcome.answered, "answered_before": done, "failed": outcome.failed,
        "stopped": outcome.stopped, "output": str(out),
        "valid": check.ok if check is not None else None,
    })  # fmt: skip
    for reason in outcome.failed[:10]:
        st.err.print(Text(reason, style="red"))
    if outcome.fatal or outcome.stopped or outcome.failed:
        st.err.print("run the same command again to ask the prompts not answered yet")
        raise typer.Exit(130 if outcome.stopped else 1)


def _report(st: State, fields: dict[str, object]) -> None:
    if st.json:
        output.print_json(st, fields)
    else:
        st.out.print(", ".join(f"{k}: {v}" for k, v in fields.items() if k != "failed"))
