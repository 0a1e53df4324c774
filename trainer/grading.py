"""Grading a reinforcement job's samples: the graders' `Context`, the pool that grades while
the next prompt samples, and what a step's grades add up to.

- Context: Python graders in the sandbox with the JobSpec's `grader_limits`, at most
  `PYTHON_SLOTS` at once; model graders (`score_model`, `label_model`) through the service:
  the chat request is POSTed to `{attempt's report URL without /report}/grader/chat` with
  the attempt's bearer token (the service reaches the grading model, a model it serves or the
  operator's grading endpoint). A trainer without a report URL (the stdout channel) reaches
  no grading model: a model grader's grade is an error there, and `cosine` (no embedding
  model here) too.
- Failures: a sample whose grading errors scores 0 and is counted; a step with any sends one
  `warn` log naming how many and the first error; a training step where every sample's
  grading errored ends the job (`GraderFailed`, a `Failed` message with `grader_failed`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.graders import model_graders
from contracts.graders.run import Context, Grade, grade
from contracts.graders.schema import GraderType, MultiGrader
from contracts.spec import JobSpec
from trainer.data import DataError

PYTHON_SLOTS = max(1, min(4, os.cpu_count() or 1))
GRADING_THREADS = 8
GRADER_TIMEOUT_SECONDS = 120.0
"""How long one model grader's request through the service may take."""


class GraderFailed(DataError):
    """Every sample of a training step failed to grade: the job cannot learn anything."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "grader_failed", "method.grader")


def service_completion(report_url: str, token: str) -> model_graders.Complete:
    """Model graders' chat completions through the service's grading route of this attempt."""
    import httpx

    base = report_url.rstrip("/")
    base = base[: -len("/report")] if base.endswith("/report") else base.rsplit("/", 1)[0]
    url = base + "/grader/chat"
    client = httpx.Client(
        headers={"Authorization": f"Bearer {token}"}, timeout=GRADER_TIMEOUT_SECONDS
    )

    def complete(model: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = client.post(url, json={**body, "model": model})
        except httpx.HTTPError as e:
            raise model_graders.ModelCallError(f"the grading route failed: {e}") from e
        if response.status_code >= 400:
            raise model_graders.ModelCallError(
                f"the grading route answered HTTP {response.status_code}: {response.text[:500]}"
            )
        try:
            answer: dict[str, Any] = response.json()
        except ValueError as e:
            raise model_graders.ModelCallError("the grading route's answer is not JSON") from e
        return answer

    return complete


def context(spec: JobSpec, report_url: str | None, token: str | None) -> Context:
    """What this job's graders may use here."""
    complete = service_completion(report_url, token or "") if report_url else None
    return Context(spec.grader_limits, threading.BoundedSemaphore(PYTHON_SLOTS), complete)


class Grading:
    """A pool grading samples while the caller samples on: `submit`, then `results`."""

    def __init__(self, grader: GraderType, ctx: Context) -> None:
        self.grader, self.ctx = grader, ctx
        self._pool = ThreadPoolExecutor(GRADING_THREADS, thread_name_prefix="grader")
        self._futures: list[Future[Grade]] = []

    def __enter__(self) -> Grading:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, text: str, item: dict[str, Any]) -> None:
        self._futures.append(self._pool.submit(grade, self.grader, text, item, self.ctx))

    def results(self) -> list[Grade]:
        """Every submitted sample's grade, in submission order."""
        return [f.result() for f in self._futures]


@dataclass
class Rewards:
    """What a step's (or a validation's) grades add up to."""

    rewards: list[float]
    sub_rewards: dict[str, float] = field(default_factory=dict)  # mean per sub-grader
    failed: list[Grade] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.rewards) / max(1, len(self.rewards))


def sum_up(grader: GraderType, grades: list[Grade]) -> Rewards:
    """Each sample's reward (0 where its grading errored), and the sub-graders' means."""
    failed = [g for g in grades if g.errors.any()]
    rewards = [0.0 if g.errors.any() else float(g.reward) for g in grades]
    subs: dict[str, float] = {}
    if isinstance(grader, MultiGrader):
        n = max(1, len(grades))
        for key in grader.named():
            subs[key] = sum(float(g.sub_rewards.get(key, 0.0)) for g in grades) / n
    return Rewards(rewards, subs, failed)


def describe(g: Grade) -> str:
    """One grade's errors in a line: OpenAI's error flags and the first detail."""
    flags = [k for k, v in asdict(g.errors).items() if v is True]
    detail = (
        g.errors.python_grader_runtime_error_details
        or g.errors.model_grader_server_error_details
        or g.details.get("error")
        or g.details.get("stderr")
        or ""
    )
    detail = " ".join(str(detail).split())[:300]
    return f"{', '.join(flags) or 'error'}" + (f": {detail}" if detail else "")


def failure_summary(rewards: Rewards, what: str) -> str | None:
    """The one log line of `what` (a step, a validation) with failed gradings, or None."""
    if not rewards.failed:
        return None
    n, k = len(rewards.rewards), len(rewards.failed)
    return (
        f"{what}: the grader failed on {k} of {n} samples, each scored 0 "
        f"(first: {describe(rewards.failed[0])})"
    )


def check_not_all_failed(rewards: Rewards, step: int) -> None:
    """`GraderFailed` when every sample of training step `step` failed to grade."""
    if rewards.rewards and len(rewards.failed) == len(rewards.rewards):
        raise GraderFailed(
            f"The grader failed on every sample of step {step} ({len(rewards.rewards)} "
            f"samples), so the job cannot learn: {describe(rewards.failed[0])}"
        )
