"""A finished job's metrics CSV becomes a File (purpose `fine-tune-results`) of its project."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from sqlalchemy.orm import Session

from contracts.store import ObjectNotFound, ObjectStore
from service.db.tables import File, FineTuningJob
from service.files import repository as files
from service.ids import new_id, now

log = logging.getLogger(__name__)
RESULTS_PURPOSE = "fine-tune-results"


def save_result_file(
    session: Session, store: ObjectStore, job: FineTuningJob, metrics_key: str
) -> File | None:
    """Copy the trainer's CSV to `files/{id}` (streamed: the scheduler never holds it whole)
    and record it; None if the CSV is missing."""
    file_id = new_id("file")
    lines = 0

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal lines
        for chunk in chunks:
            lines += chunk.count(b"\n")
            yield chunk

    try:
        size = store.put_stream(files.file_key(file_id), counted(store.iter_bytes(metrics_key)))
    except ObjectNotFound:
        log.warning("job %s finished without its metrics CSV at %s", job.id, metrics_key)
        return None
    return _record(session, job, file_id, "step_metrics.csv", size, lines)


def save_result_bytes(
    session: Session, store: ObjectStore, job: FineTuningJob, filename: str, data: bytes
) -> File:
    """Store `data` as a new result File of the job's project (not yet in `result_files`)."""
    file_id = new_id("file")
    store.put_bytes(files.file_key(file_id), data)
    return _record(session, job, file_id, filename, len(data), data.count(b"\n"))


def _record(
    session: Session, job: FineTuningJob, file_id: str, filename: str, size: int, lines: int
) -> File:
    return files.add_file(
        session,
        File(
            id=file_id,
            project_id=job.project_id,
            filename=filename,
            purpose=RESULTS_PURPOSE,
            bytes=size,
            status="processed",
            format=None,
            lines=lines,
            created_at=now(),
        ),
    )
