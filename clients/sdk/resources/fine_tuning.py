"""`client.fine_tuning`: the namespace holding `jobs` (and `jobs.checkpoints`)."""

from __future__ import annotations

from .._http import AsyncAPI, SyncAPI
from .jobs import AsyncJobs, Jobs


class FineTuning:
    def __init__(self, api: SyncAPI) -> None:
        self.jobs = Jobs(api)


class AsyncFineTuning:
    def __init__(self, api: AsyncAPI) -> None:
        self.jobs = AsyncJobs(api)
