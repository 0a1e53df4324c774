"""`whetstone jobs follow`: a live view of a job's progress, or plain lines when piped.

On a terminal: events scroll by above a progress bar with step, loss and ETA, and a
sparkline of the training loss. Piped: one line per event (`--json`: one JSON object per
event). The exit code is 0 only when the job succeeds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.text import Text

from clients.sdk import Whetstone
from clients.sdk.types import FineTuningJob, FineTuningJobEvent, Metrics

from . import output
from .state import State

BARS = "▁▂▃▄▅▆▇█"
LEVEL_STYLE = {"warn": "yellow", "error": "red"}


def sparkline(values: list[float], width: int = 48) -> str:
    """The last `width` values as bars, lowest `▁`, highest `█`."""
    tail = values[-width:]
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    span = high - low
    if span <= 0:
        return BARS[len(BARS) // 2] * len(tail)
    return "".join(BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))] for v in tail)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class Tracker:
    """Training progress gathered from metrics events."""

    step: int = 0
    total: int | None = None
    losses: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)  # a reinforcement job's train reward mean
    first: tuple[int, int] | None = None  # (created_at, step) of the first metrics seen
    last: tuple[int, int] | None = None

    def add(self, event: FineTuningJobEvent, metrics: Metrics) -> None:
        if metrics.step is not None:
            self.step = metrics.step
            point = (event.created_at, metrics.step)
            self.first = self.first or point
            self.last = point
        if metrics.total_steps:
            self.total = metrics.total_steps
        if metrics.train_loss is not None:
            self.losses.append(metrics.train_loss)
        if metrics.train_reward_mean is not None:
            self.rewards.append(metrics.train_reward_mean)

    def eta(self) -> str:
        if not (self.first and self.last and self.total):
            return "-"
        seconds = self.last[0] - self.first[0]
        steps = self.last[1] - self.first[1]
        if seconds <= 0 or steps <= 0:
            return "-"
        remaining = (self.total - self.step) * seconds / steps
        return duration(remaining - (time.time() - self.last[0]))

    def loss(self) -> str:
        """The latest loss, and the latest mean reward of a reinforcement job."""
        text = output.loss(self.losses[-1] if self.losses else None)
        if self.rewards:
            text += f"  reward {output.loss(self.rewards[-1])}"
        return text

    def sparklines(self) -> str:
        lines = [f"loss {sparkline(self.losses)}"] if self.losses else []
        if self.rewards:
            lines.append(f"reward {sparkline(self.rewards)}")
        return "\n".join(lines)


def event_line(event: FineTuningJobEvent) -> Text:
    line = Text(output.timestamp(event.created_at) + "  ", style="dim")
    line.append(event.message, style=LEVEL_STYLE.get(event.level, ""))
    return line


def _live(st: State, client: Whetstone, job_id: str, interval: float) -> None:
    tracker = Tracker()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss [cyan]{task.fields[loss]}"),
        TextColumn("ETA {task.fields[eta]}"),
        console=st.out,
    )
    task: TaskID = progress.add_task(job_id, total=None, loss="-", eta="-")
    spark = Text("")
    with Live(Group(progress, spark), console=st.out, refresh_per_second=8) as live:
        for event in client.fine_tuning.jobs.follow(job_id, poll_interval=interval):
            live.console.print(event_line(event))
            metrics = event.metrics
            if metrics is None:
                continue
            tracker.add(event, metrics)
            progress.update(
                task, completed=tracker.step, total=tracker.total,
                loss=tracker.loss(), eta=tracker.eta(),
            )  # fmt: skip
            spark.plain = tracker.sparklines()
        if tracker.total:
            progress.update(task, eta="0:00:00")


def _plain(st: State, client: Whetstone, job_id: str, interval: float) -> None:
    for event in client.fine_tuning.jobs.follow(job_id, poll_interval=interval):
        if st.json:
            st.out.print(json.dumps(output.dump(event)), soft_wrap=True, highlight=False)
        else:
            st.out.print(event_line(event), soft_wrap=True)


def summary(st: State, job: FineTuningJob) -> int:
    """Print how the job ended; the exit code (0 only when it succeeded)."""
    if st.json:
        st.out.print(json.dumps(output.dump(job)), soft_wrap=True, highlight=False)
    elif job.status == "succeeded":
        model = escape(str(job.fine_tuned_model))
        st.out.print(f"[green]✓ succeeded[/green]: fine-tuned model [bold]{model}[/bold]")
    elif job.status == "failed" and job.error is not None:
        param = f", param: {job.error.param}" if job.error.param else ""
        detail = escape(f"{job.error.message} (code: {job.error.code}{param})")
        st.err.print(f"[red]✗ failed[/red]: {detail}")
    else:
        st.err.print(f"[yellow]job {escape(job.id)} ended {job.status}[/yellow]")
    return 0 if job.status == "succeeded" else 1


def follow_job(st: State, client: Whetstone, job_id: str, interval: float) -> int:
    """Follow a job to its end; return the exit code."""
    if st.json or not st.out.is_terminal:
        _plain(st, client, job_id, interval)
    else:
        _live(st, client, job_id, interval)
    return summary(st, client.fine_tuning.jobs.retrieve(job_id))
