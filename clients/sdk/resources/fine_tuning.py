"""`client.fine_tuning`: the namespace holding `jobs` (and `jobs.checkpoints`)."""

from __future__ import annotations

from .._resource import A, Resource
from .jobs import Jobs


class FineTuning(Resource[A]):
    def __init__(self, api: A) -> None:
        super().__init__(api)
        self.jobs = Jobs(api)
