"""`client.fine_tuning.jobs.checkpoints`: a job's checkpoints, each usable as a model."""

from __future__ import annotations

from .._resource import A, Resource, listing
from ..pagination import Listing
from ..types.fine_tuning import FineTuningJobCheckpoint
from ._paths import segment


class Checkpoints(Resource[A]):
    @listing
    def list(
        self, fine_tuning_job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> Listing[FineTuningJobCheckpoint]:
        path = f"fine_tuning/jobs/{segment(fine_tuning_job_id)}/checkpoints"
        return Listing(path, FineTuningJobCheckpoint, {"after": after, "limit": limit})
