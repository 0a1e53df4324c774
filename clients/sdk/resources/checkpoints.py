"""`client.fine_tuning.jobs.checkpoints`: a job's checkpoints, each usable as a model."""

from __future__ import annotations

from typing import Any

from .._http import AsyncAPI, SyncAPI
from ..pagination import AsyncPage, AsyncPaginator, SyncPage
from ..types.fine_tuning import FineTuningJobCheckpoint
from ._paths import segment


def _path(job_id: str) -> str:
    return f"fine_tuning/jobs/{segment(job_id)}/checkpoints"


class Checkpoints:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def list(
        self, fine_tuning_job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> SyncPage[FineTuningJobCheckpoint]:
        path = _path(fine_tuning_job_id)

        def fetch(params: dict[str, Any]) -> SyncPage[FineTuningJobCheckpoint]:
            body = self._api.request("GET", path, params=params).json()
            return SyncPage(body, FineTuningJobCheckpoint, params, fetch)

        return fetch({"after": after, "limit": limit})


class AsyncCheckpoints:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    def list(
        self, fine_tuning_job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> AsyncPaginator[FineTuningJobCheckpoint]:
        path = _path(fine_tuning_job_id)

        async def fetch(params: dict[str, Any]) -> AsyncPage[FineTuningJobCheckpoint]:
            body = (await self._api.request("GET", path, params=params)).json()
            return AsyncPage(body, FineTuningJobCheckpoint, params, fetch)

        return AsyncPaginator(fetch, {"after": after, "limit": limit})
