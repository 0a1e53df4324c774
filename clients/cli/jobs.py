"""`whetstone jobs ...`: create, list, inspect, drive and follow fine-tuning jobs."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from clients.sdk.types import FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent

from . import output
from .follow import follow_job
from .state import JsonFlag, State, flag, state

app = typer.Typer(help="Create, watch and control fine-tuning jobs.", no_args_is_help=True)

AUTO = "auto"
Interval = Annotated[float, typer.Option("--interval", help="Seconds between polls.")]


class MethodType(StrEnum):
    supervised = "supervised"
    dpo = "dpo"
    reinforcement = "reinforcement"


class ReasoningEffort(StrEnum):
    default = "default"
    low = "low"
    medium = "medium"
    high = "high"


def _error(job: FineTuningJob) -> str:
    return f"{job.error.code}: {job.error.message}" if job.error else "-"


FIELDS: list[output.Field] = [
    ("id", output.text),
    ("status", output.status),
    ("model", output.text),
    ("fine_tuned_model", output.text),
    ("training_file", output.text),
    ("validation_file", output.text),
    ("created_at", output.timestamp),
    ("finished_at", output.timestamp),
    ("estimated_finish", output.timestamp),
    ("trained_tokens", output.text),
    ("result_files", lambda v: ", ".join(v or []) or "-"),
]
COLUMNS = [
    ("ID", lambda j: j.id),
    ("STATUS", lambda j: output.status(j.status)),
    ("MODEL", lambda j: j.model),
    ("FINE-TUNED MODEL", lambda j: output.text(j.fine_tuned_model)),
    ("CREATED", lambda j: output.minute(j.created_at)),
]


def read_grader(path: Path | None, method: MethodType) -> dict[str, Any] | None:
    """The grader JSON of `--grader` (an object, as OpenAI's graders are written); only a
    reinforcement job takes one, and it must."""
    if method is not MethodType.reinforcement:
        if path is not None:
            raise typer.BadParameter(
                "only --method reinforcement takes a grader", param_hint="--grader"
            )
        return None
    if path is None:
        raise typer.BadParameter(
            "--method reinforcement needs a grader: --grader grader.json", param_hint="--grader"
        )
    try:
        grader = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"cannot read {path}: {e}", param_hint="--grader") from None
    if not isinstance(grader, dict):
        raise typer.BadParameter(f"{path} must hold one JSON object", param_hint="--grader")
    return grader


def _method(
    method: MethodType, hyperparameters: dict[str, Any], grader: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The request's `method`: the hyperparameters given (a flag left out: `auto`)."""
    hyper = {k: v for k, v in hyperparameters.items() if v is not None}
    if method is MethodType.supervised and not hyper:
        return None
    block: dict[str, Any] = {"hyperparameters": hyper}
    if grader is not None:
        block = {"grader": grader, **block}
    return {"type": method.value, method.value: block}


@app.command()
def create(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Base model (or own fine-tuned model).")],
    training_file: Annotated[str, typer.Option(help="Training file id (file-...).")],
    validation_file: Annotated[
        str | None, typer.Option(help="Validation file id.", show_default="none")
    ] = None,
    suffix: Annotated[
        str | None, typer.Option(help="Added to the model name.", show_default="none")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="n_epochs.", show_default=AUTO)] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch_size.", show_default=AUTO)] = None,
    lr_multiplier: Annotated[
        float | None, typer.Option(help="learning_rate_multiplier.", show_default=AUTO)
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="weight_decay (Whetstone's).", show_default=AUTO)
    ] = None,
    method: Annotated[MethodType, typer.Option(help="Fine-tuning method.")] = MethodType.supervised,
    beta: Annotated[
        float | None, typer.Option(help="DPO beta (with --method dpo).", show_default=AUTO)
    ] = None,
    grader: Annotated[
        Path | None,
        typer.Option(help="Grader JSON file (with --method reinforcement).", show_default="none"),
    ] = None,
    compute_multiplier: Annotated[
        float | None,
        typer.Option(help="compute_multiplier (with --method reinforcement).", show_default=AUTO),
    ] = None,
    eval_interval: Annotated[
        int | None,
        typer.Option(help="eval_interval (with --method reinforcement).", show_default=AUTO),
    ] = None,
    eval_samples: Annotated[
        int | None,
        typer.Option(help="eval_samples (with --method reinforcement).", show_default=AUTO),
    ] = None,
    reasoning_effort: Annotated[
        ReasoningEffort | None,
        typer.Option(
            help="reasoning_effort (with --method reinforcement).", show_default="default"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed.", show_default="random")] = None,
    follow: Annotated[bool, flag("--follow", help="Then follow it to the end.")] = False,
    interval: Interval = 2.0,
    json_out: JsonFlag = False,
) -> None:
    """Create a fine-tuning job."""
    st = state(ctx, json_out)
    own: dict[MethodType, dict[str, Any]] = {  # the flags of one method only
        MethodType.dpo: {"beta": beta},
        MethodType.reinforcement: {
            "compute_multiplier": compute_multiplier, "eval_interval": eval_interval,
            "eval_samples": eval_samples,
            "reasoning_effort": reasoning_effort.value if reasoning_effort else None,
        },
    }  # fmt: skip
    hyper = {
        "n_epochs": epochs, "batch_size": batch_size, "learning_rate_multiplier": lr_multiplier,
        "weight_decay": weight_decay, **own.get(method, {}),
    }  # fmt: skip
    body = _method(method, hyper, read_grader(grader, method))
    client = st.client()
    job = client.fine_tuning.jobs.create(
        model=model, training_file=training_file, validation_file=validation_file,
        suffix=suffix, seed=seed, method=body,
    )  # fmt: skip
    output.show_one(st, job, FIELDS)
    if follow:
        raise typer.Exit(follow_job(st, client, job.id, interval))


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    limit: Annotated[
        int | None, typer.Option(help="At most this many.", show_default="all")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """List fine-tuning jobs, newest first."""
    st = state(ctx, json_out)
    jobs: list[FineTuningJob] = []
    for job in st.client().fine_tuning.jobs.list(limit=min(limit, 100) if limit else None):
        if limit is not None and len(jobs) >= limit:
            break
        jobs.append(job)
    output.show_many(st, jobs, COLUMNS)


@app.command()
def get(ctx: typer.Context, job_id: str, json_out: JsonFlag = False) -> None:
    """Show one job."""
    st = state(ctx, json_out)
    job = st.client().fine_tuning.jobs.retrieve(job_id)
    output.show_one(st, job, [*FIELDS, ("error", lambda _: _error(job))])


def _act(ctx: typer.Context, job_id: str, action: str, json_out: bool) -> None:
    st = state(ctx, json_out)
    jobs = st.client().fine_tuning.jobs
    job: FineTuningJob = getattr(jobs, action)(job_id)
    if st.json:
        output.print_json(st, output.dump(job))
    else:
        st.out.print(Text.assemble(f"{job.id}: ", output.status(job.status)))


@app.command()
def cancel(ctx: typer.Context, job_id: str, json_out: JsonFlag = False) -> None:
    """Cancel a job."""
    _act(ctx, job_id, "cancel", json_out)


@app.command()
def pause(ctx: typer.Context, job_id: str, json_out: JsonFlag = False) -> None:
    """Pause a running job (it checkpoints and stops)."""
    _act(ctx, job_id, "pause", json_out)


@app.command()
def resume(ctx: typer.Context, job_id: str, json_out: JsonFlag = False) -> None:
    """Resume a paused job from its last checkpoint."""
    _act(ctx, job_id, "resume", json_out)


@app.command()
def events(
    ctx: typer.Context,
    job_id: str,
    limit: Annotated[int, typer.Option(help="The newest N events.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Show a job's newest events, oldest of them first."""
    st = state(ctx, json_out)
    page = st.client().fine_tuning.jobs.list_events(job_id, limit=min(limit, 100))
    newest: list[FineTuningJobEvent] = []
    for event in page:
        if len(newest) >= limit:
            break
        newest.append(event)
    columns = [
        ("TIME", lambda e: output.timestamp(e.created_at)),
        ("LEVEL", lambda e: e.level),
        ("MESSAGE", lambda e: e.message),
    ]
    output.show_many(st, newest[::-1], columns)


@app.command()
def checkpoints(ctx: typer.Context, job_id: str, json_out: JsonFlag = False) -> None:
    """List a job's checkpoints (each usable as a model)."""
    st = state(ctx, json_out)
    items: list[FineTuningJobCheckpoint] = list(
        st.client().fine_tuning.jobs.checkpoints.list(job_id)
    )

    columns = [
        ("STEP", lambda c: str(c.step_number)),
        ("MODEL", lambda c: c.fine_tuned_model_checkpoint),
        ("TRAIN LOSS", lambda c: output.loss(c.metrics.train_loss)),
        ("VALID LOSS", lambda c: output.loss(c.metrics.valid_loss)),
        ("CREATED", lambda c: output.minute(c.created_at)),
    ]
    if any(c.metrics.train_reward_mean is not None for c in items):  # a reinforcement job
        columns[4:4] = [
            ("TRAIN REWARD", lambda c: output.loss(c.metrics.train_reward_mean)),
            ("VALID REWARD", lambda c: output.loss(c.metrics.valid_reward_mean)),
        ]
    output.show_many(st, items, columns)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command("eval")
def eval_report(ctx: typer.Context, job_id: str, json_out: JsonFlag = False) -> None:
    """Show a job's evaluation report: each model's exact match and F1 on the same examples."""
    st = state(ctx, json_out)
    report = st.client().fine_tuning.jobs.eval_report(job_id)
    if report is None:
        st.err.print(f"{job_id} has no evaluation report (yet): see `whetstone jobs events`.")
        raise typer.Exit(1)
    if st.json:
        output.print_json(st, report)
        return
    n = report["examples"]
    where = "validation file" if report["data"] == "validation_file" else "held-out lines"
    rows = [
        [m["kind"], m["model"], output.text(m["step"]),
         "-" if m["matches"] is None else f"{m['matches']}/{n}", _fraction(m["exact_match"]),
         _fraction(m["f1"]), output.loss(m["valid_loss"]), m.get("error") or ""]
        for m in report["models"]
    ]  # fmt: skip
    headers = ["KIND", "MODEL", "STEP", "MATCHES", "EXACT", "F1", "VALID LOSS", "ERROR"]
    title = f"Evaluation on {n} examples ({where}), {report['seconds']:.0f} s"
    output.show_table(st, headers, rows, title)
    if report["outliers"]:
        worst = ", ".join(f"line {o['line']} ({o['loss']:.2f})" for o in report["outliers"])
        st.out.print(f"Highest final training loss: {worst}")
    if report.get("flips"):
        _show_flips(st, report["flips"])


def _show_flips(st: State, flips: dict[str, Any]) -> None:
    """The examples the source model and the fine-tuned model disagree on (exact match)."""
    title = (f"Against the source model: {flips['lost']} lost (the source was right), "
             f"{flips['gained']} gained (the fine-tuned model is right)")  # fmt: skip
    rows = [[f["flip"], str(f["line"]), f["prompt"], f["reference"], f["source"], f["fine_tuned"]]
            for f in flips["examples"]]  # fmt: skip
    if rows:
        headers = ["FLIP", "LINE", "PROMPT", "REFERENCE", "SOURCE", "FINE-TUNED"]
        output.show_table(st, headers, rows, title)
    else:
        st.out.print(title)


@app.command("follow")
def follow_command(
    ctx: typer.Context, job_id: str, interval: Interval = 2.0, json_out: JsonFlag = False
) -> None:
    """Follow a job live: progress, loss, ETA. Exits non-zero unless it succeeds."""
    st = state(ctx, json_out)
    raise typer.Exit(follow_job(st, st.client(), job_id, interval))
