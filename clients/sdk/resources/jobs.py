"""`client.fine_tuning.jobs`: create and drive fine-tuning jobs; wait for them; follow them.

`wait(id)` polls until the job is final: it returns a succeeded job and raises
`JobFailedError` (with the job's `error` fields) or `JobCancelledError` otherwise.
`follow(id)` yields the job's events, oldest first, as they arrive (metrics events carry
`.metrics`) and stops once the job is final and its last events are out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .._core import Call, content, parsed
from .._flow import Emit, Feed, Flow, Pause
from .._resource import A, Resource, endpoint, feed, listing
from ..errors import JobCancelledError, JobFailedError, WaitTimeoutError
from ..pagination import Listing, Page
from ..types.files import FileObject
from ..types.fine_tuning import FineTuningJob, FineTuningJobEvent
from ._paths import segment
from .checkpoints import Checkpoints

EVENTS_PAGE = 100
EVAL_REPORT = "eval_report.json"
"""The filename of a job's evaluation report among its `result_files` (docs/api.md)."""


class Jobs(Resource[A]):
    def __init__(self, api: A) -> None:
        super().__init__(api)
        self.checkpoints = Checkpoints(api)

    @endpoint
    def create(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        method: Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        integrations: Iterable[Mapping[str, Any]] | None = None,
    ) -> Call[FineTuningJob]:
        body: dict[str, Any] = {"model": model, "training_file": training_file}
        optional = {
            "validation_file": validation_file,
            "suffix": suffix,
            "seed": seed,
            "method": dict(method) if method is not None else None,
            "hyperparameters": dict(hyperparameters) if hyperparameters is not None else None,
            "metadata": dict(metadata) if metadata is not None else None,
            "integrations": [dict(i) for i in integrations] if integrations is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return Call("POST", "fine_tuning/jobs", parsed(FineTuningJob), json=body)

    @listing
    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Listing[FineTuningJob]:
        params: dict[str, Any] = {"after": after, "limit": limit}
        params.update({f"metadata[{k}]": v for k, v in (metadata or {}).items()})
        return Listing("fine_tuning/jobs", FineTuningJob, params)

    @endpoint
    def retrieve(self, fine_tuning_job_id: str) -> Call[FineTuningJob]:
        return _job(fine_tuning_job_id)

    @endpoint
    def eval_report(self, fine_tuning_job_id: str) -> Flow[dict[str, Any] | None]:
        """The job's evaluation report (`eval_report.json`), or None while it has none."""
        job: FineTuningJob = yield _job(fine_tuning_job_id)
        for file_id in reversed(job.result_files or []):
            path = f"files/{segment(file_id)}"
            file: FileObject = yield Call("GET", path, parsed(FileObject))
            if file.filename == EVAL_REPORT:
                report: bytes = yield Call("GET", f"{path}/content", content)
                return dict(json.loads(report))
        return None

    @endpoint
    def cancel(self, fine_tuning_job_id: str) -> Call[FineTuningJob]:
        return _action(fine_tuning_job_id, "cancel")

    @endpoint
    def pause(self, fine_tuning_job_id: str) -> Call[FineTuningJob]:
        return _action(fine_tuning_job_id, "pause")

    @endpoint
    def resume(self, fine_tuning_job_id: str) -> Call[FineTuningJob]:
        return _action(fine_tuning_job_id, "resume")

    @listing
    def list_events(
        self, fine_tuning_job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> Listing[FineTuningJobEvent]:
        """The job's events, newest first (as the API lists them)."""
        return _events(fine_tuning_job_id, after, limit)

    @endpoint
    def wait(
        self, fine_tuning_job_id: str, *, poll_interval: float = 5.0, timeout: float | None = None
    ) -> Flow[FineTuningJob]:
        """Poll until the job is final; return it if it succeeded, raise otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job: FineTuningJob = yield _job(fine_tuning_job_id)
            if job.finished:
                return _finished(job)
            pause = _pause(poll_interval, deadline)
            if pause is None:
                raise WaitTimeoutError(job, timeout or 0.0)
            yield Pause(pause)

    @feed
    def follow(
        self, fine_tuning_job_id: str, *, poll_interval: float = 2.0
    ) -> Feed[FineTuningJobEvent]:
        """Yield the job's events oldest first as they arrive, until the job is final."""
        seen: set[str] = set()
        while True:
            job: FineTuningJob = yield _job(fine_tuning_job_id)
            for event in (yield from _new_events(fine_tuning_job_id, seen)):
                yield Emit(event)
            if job.finished:
                return
            yield Pause(poll_interval)


def _job(job_id: str) -> Call[FineTuningJob]:
    return Call("GET", f"fine_tuning/jobs/{segment(job_id)}", parsed(FineTuningJob))


def _action(job_id: str, action: str) -> Call[FineTuningJob]:
    return Call("POST", f"fine_tuning/jobs/{segment(job_id)}/{action}", parsed(FineTuningJob))


def _events(job_id: str, after: str | None, limit: int | None) -> Listing[FineTuningJobEvent]:
    path = f"fine_tuning/jobs/{segment(job_id)}/events"
    return Listing(path, FineTuningJobEvent, {"after": after, "limit": limit})


def _finished(job: FineTuningJob) -> FineTuningJob:
    """The job when it succeeded; the matching exception when it failed or was cancelled."""
    if job.status == "failed":
        raise JobFailedError(job)
    if job.status == "cancelled":
        raise JobCancelledError(job)
    return job


def _pause(poll_interval: float, deadline: float | None) -> float | None:
    """How long to sleep before the next poll; None once the deadline has passed."""
    if deadline is None:
        return poll_interval
    remaining = deadline - time.monotonic()
    return None if remaining <= 0 else min(poll_interval, remaining)


def _new_events(job_id: str, seen: set[str]) -> Flow[list[FineTuningJobEvent]]:
    """The events not seen yet, oldest first: newest-first pages until a seen one."""
    fresh: list[FineTuningJobEvent] = []
    query: Listing[FineTuningJobEvent] | None = _events(job_id, None, EVENTS_PAGE)
    while query is not None:
        page: Page[FineTuningJobEvent] = yield query.call()
        events, reached = _unseen(page.data, seen)
        fresh.extend(events)
        query = None if reached else page.next
    seen.update(event.id for event in fresh)
    return fresh[::-1]


def _unseen(
    page: list[FineTuningJobEvent], seen: set[str]
) -> tuple[list[FineTuningJobEvent], bool]:
    """Events of a newest-first page not seen yet, and whether a seen one was reached."""
    fresh: list[FineTuningJobEvent] = []
    for event in page:
        if event.id in seen:
            return fresh, True
        fresh.append(event)
    return fresh, False
