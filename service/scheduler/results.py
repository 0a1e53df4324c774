"""A finished job's metrics CSV becomes a File (purpose `fine-tune-results`) of its project."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from contracts.store import ObjectNotFound, ObjectStore
from service.db.repositories import files
from service.db.tables import File, FineTuningJob
from service.ids import new_id, now

log = logging.getLogger(__name__)
RESULTS_PURPOSE = "fine-tune-results"


def save_result_file(
    session: Session, store: ObjectStore, job: FineTuningJob, metrics_key: str
) -> File | None:
    """Copy the trainer's CSV to `files/{id}` and record it; None if the CSV is missing."""
    try:
        data = store.get_bytes(metrics_key)
    except ObjectNotFound:
        log.warning("job %s finished without its metrics CSV at %s", job.id, metrics_key)
        return None
    return save_result_bytes(session, store, job, "step_metrics.csv", data)


def save_result_bytes(
    session: Session, store: ObjectStore, job: FineTuningJob, filename: str, data: bytes
) -> File:
    """Store `data` as a new result File of the job's project (not yet in `result_files`)."""
    file_id = new_id("file")
    store.put_bytes(files.file_key(file_id), data)
    return files.add_file(
        session,
        File(
            id=file_id,
            project_id=job.project_id,
            filename=filename,
            purpose=RESULTS_PURPOSE,
            bytes=len(data),
            status="processed",
            format=None,
            lines=data.count(b"\n"),
            created_at=now(),
        ),
    )
