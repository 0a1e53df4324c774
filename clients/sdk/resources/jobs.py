"""`client.fine_tuning.jobs`: create and drive fine-tuning jobs; wait for them; follow them.

`wait(id)` polls until the job is final: it returns a succeeded job and raises
`JobFailedError` (with the job's `error` fields) or `JobCancelledError` otherwise.
`follow(id)` yields the job's events, oldest first, as they arrive (metrics events carry
`.metrics`) and stops once the job is final and its last events are out.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from .._http import AsyncAPI, SyncAPI
from ..errors import JobCancelledError, JobFailedError, WaitTimeoutError
from ..pagination import AsyncPage, AsyncPaginator, SyncPage
from ..types.files import FileObject
from ..types.fine_tuning import FineTuningJob, FineTuningJobEvent
from ._paths import segment
from .checkpoints import AsyncCheckpoints, Checkpoints

EVENTS_PAGE = 100
EVAL_REPORT = "eval_report.json"
"""The filename of a job's evaluation report among its `result_files` (docs/api.md)."""


def create_body(
    model: str,
    training_file: str,
    validation_file: str | None,
    suffix: str | None,
    seed: int | None,
    method: Mapping[str, Any] | None,
    hyperparameters: Mapping[str, Any] | None,
    metadata: Mapping[str, str] | None,
    integrations: Iterable[Mapping[str, Any]] | None,
) -> dict[str, Any]:
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
    return body


def _list_params(
    after: str | None, limit: int | None, metadata: Mapping[str, str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"after": after, "limit": limit}
    params.update({f"metadata[{k}]": v for k, v in (metadata or {}).items()})
    return params


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


class Jobs:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api
        self.checkpoints = Checkpoints(api)

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
    ) -> FineTuningJob:
        body = create_body(
            model, training_file, validation_file, suffix, seed, method, hyperparameters,
            metadata, integrations,
        )  # fmt: skip
        return self._api.post("fine_tuning/jobs", FineTuningJob, json=body)

    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> SyncPage[FineTuningJob]:
        return self._list(_list_params(after, limit, metadata))

    def _list(self, params: dict[str, Any]) -> SyncPage[FineTuningJob]:
        body = self._api.request("GET", "fine_tuning/jobs", params=params).json()
        return SyncPage(body, FineTuningJob, params, self._list)

    def retrieve(self, fine_tuning_job_id: str) -> FineTuningJob:
        return self._api.get(f"fine_tuning/jobs/{segment(fine_tuning_job_id)}", FineTuningJob)

    def eval_report(self, fine_tuning_job_id: str) -> dict[str, Any] | None:
        """The job's evaluation report (`eval_report.json`), or None while it has none."""
        job = self.retrieve(fine_tuning_job_id)
        for file_id in reversed(job.result_files or []):
            file = self._api.get(f"files/{segment(file_id)}", FileObject)
            if file.filename == EVAL_REPORT:
                content = self._api.request("GET", f"files/{segment(file_id)}/content").content
                return dict(json.loads(content))
        return None

    def cancel(self, fine_tuning_job_id: str) -> FineTuningJob:
        return self._action(fine_tuning_job_id, "cancel")

    def pause(self, fine_tuning_job_id: str) -> FineTuningJob:
        return self._action(fine_tuning_job_id, "pause")

    def resume(self, fine_tuning_job_id: str) -> FineTuningJob:
        return self._action(fine_tuning_job_id, "resume")

    def _action(self, job_id: str, action: str) -> FineTuningJob:
        return self._api.post(f"fine_tuning/jobs/{segment(job_id)}/{action}", FineTuningJob)

    def list_events(
        self, fine_tuning_job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> SyncPage[FineTuningJobEvent]:
        """The job's events, newest first (as the API lists them)."""
        path = f"fine_tuning/jobs/{segment(fine_tuning_job_id)}/events"

        def fetch(params: dict[str, Any]) -> SyncPage[FineTuningJobEvent]:
            body = self._api.request("GET", path, params=params).json()
            return SyncPage(body, FineTuningJobEvent, params, fetch)

        return fetch({"after": after, "limit": limit})

    def wait(
        self, fine_tuning_job_id: str, *, poll_interval: float = 5.0, timeout: float | None = None
    ) -> FineTuningJob:
        """Poll until the job is final; return it if it succeeded, raise otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.retrieve(fine_tuning_job_id)
            if job.finished:
                return _finished(job)
            pause = _pause(poll_interval, deadline)
            if pause is None:
                raise WaitTimeoutError(job, timeout or 0.0)
            time.sleep(pause)

    def follow(
        self, fine_tuning_job_id: str, *, poll_interval: float = 2.0
    ) -> Iterator[FineTuningJobEvent]:
        """Yield the job's events oldest first as they arrive, until the job is final."""
        seen: set[str] = set()
        while True:
            job = self.retrieve(fine_tuning_job_id)
            yield from self._new_events(fine_tuning_job_id, seen)
            if job.finished:
                return
            time.sleep(poll_interval)

    def _new_events(self, job_id: str, seen: set[str]) -> builtins.list[FineTuningJobEvent]:
        fresh: builtins.list[FineTuningJobEvent] = []
        for page in self.list_events(job_id, limit=EVENTS_PAGE).iter_pages():
            events, reached = _unseen(page.data, seen)
            fresh.extend(events)
            if reached:
                break
        seen.update(event.id for event in fresh)
        return fresh[::-1]


class AsyncJobs:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api
        self.checkpoints = AsyncCheckpoints(api)

    async def create(
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
    ) -> FineTuningJob:
        body = create_body(
            model, training_file, validation_file, suffix, seed, method, hyperparameters,
            metadata, integrations,
        )  # fmt: skip
        return await self._api.post("fine_tuning/jobs", FineTuningJob, json=body)

    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> AsyncPaginator[FineTuningJob]:
        return AsyncPaginator(self._list, _list_params(after, limit, metadata))

    async def _list(self, params: dict[str, Any]) -> AsyncPage[FineTuningJob]:
        body = (await self._api.request("GET", "fine_tuning/jobs", params=params)).json()
        return AsyncPage(body, FineTuningJob, params, self._list)

    async def retrieve(self, fine_tuning_job_id: str) -> FineTuningJob:
        path = f"fine_tuning/jobs/{segment(fine_tuning_job_id)}"
        return await self._api.get(path, FineTuningJob)

    async def eval_report(self, fine_tuning_job_id: str) -> dict[str, Any] | None:
        """The job's evaluation report (`eval_report.json`), or None while it has none."""
        job = await self.retrieve(fine_tuning_job_id)
        for file_id in reversed(job.result_files or []):
            file = await self._api.get(f"files/{segment(file_id)}", FileObject)
            if file.filename == EVAL_REPORT:
                response = await self._api.request("GET", f"files/{segment(file_id)}/content")
                return dict(json.loads(response.content))
        return None

    async def cancel(self, fine_tuning_job_id: str) -> FineTuningJob:
        return await self._action(fine_tuning_job_id, "cancel")

    async def pause(self, fine_tuning_job_id: str) -> FineTuningJob:
        return await self._action(fine_tuning_job_id, "pause")

    async def resume(self, fine_tuning_job_id: str) -> FineTuningJob:
        return await self._action(fine_tuning_job_id, "resume")

    async def _action(self, job_id: str, action: str) -> FineTuningJob:
        path = f"fine_tuning/jobs/{segment(job_id)}/{action}"
        return await self._api.post(path, FineTuningJob)

    def list_events(
        self, fine_tuning_job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> AsyncPaginator[FineTuningJobEvent]:
        """The job's events, newest first (as the API lists them)."""
        path = f"fine_tuning/jobs/{segment(fine_tuning_job_id)}/events"

        async def fetch(params: dict[str, Any]) -> AsyncPage[FineTuningJobEvent]:
            body = (await self._api.request("GET", path, params=params)).json()
            return AsyncPage(body, FineTuningJobEvent, params, fetch)

        return AsyncPaginator(fetch, {"after": after, "limit": limit})

    async def wait(
        self, fine_tuning_job_id: str, *, poll_interval: float = 5.0, timeout: float | None = None
    ) -> FineTuningJob:
        """Poll until the job is final; return it if it succeeded, raise otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.retrieve(fine_tuning_job_id)
            if job.finished:
                return _finished(job)
            pause = _pause(poll_interval, deadline)
            if pause is None:
                raise WaitTimeoutError(job, timeout or 0.0)
            await asyncio.sleep(pause)

    async def follow(
        self, fine_tuning_job_id: str, *, poll_interval: float = 2.0
    ) -> AsyncIterator[FineTuningJobEvent]:
        """Yield the job's events oldest first as they arrive, until the job is final."""
        seen: set[str] = set()
        while True:
            job = await self.retrieve(fine_tuning_job_id)
            for event in await self._new_events(fine_tuning_job_id, seen):
                yield event
            if job.finished:
                return
            await asyncio.sleep(poll_interval)

    async def _new_events(self, job_id: str, seen: set[str]) -> builtins.list[FineTuningJobEvent]:
        fresh: builtins.list[FineTuningJobEvent] = []
        first = await self.list_events(job_id, limit=EVENTS_PAGE)
        async for page in first.iter_pages():
            events, reached = _unseen(page.data, seen)
            fresh.extend(events)
            if reached:
                break
        seen.update(event.id for event in fresh)
        return fresh[::-1]
