"""Upload and part rows. A part's bytes live in the store under `part_key(upload_id, id)`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from service.db.tables import Upload, UploadPart


def parts_prefix(upload_id: str) -> str:
    """The store folder of an upload's parts (docs/architecture.md, store layout)."""
    return f"uploads/{upload_id}/"


def part_key(upload_id: str, part_id: str) -> str:
    return f"{parts_prefix(upload_id)}parts/{part_id}"


def add(session: Session, row: Upload | UploadPart) -> None:
    session.add(row)
    session.flush()


def get_upload(
    session: Session, project_id: str, upload_id: str, *, for_update: bool = False
) -> Upload | None:
    """The upload if it exists in this project; another project's upload is `None` too.
    `for_update` locks its row (PostgreSQL) until the transaction ends."""
    stmt = select(Upload).where(Upload.id == upload_id, Upload.project_id == project_id)
    return session.scalar(stmt.with_for_update() if for_update else stmt)


def pending_bytes(session: Session, project_id: str) -> int:
    """The `bytes` the project's pending uploads declared."""
    total = session.scalar(
        select(func.sum(Upload.bytes)).where(
            Upload.project_id == project_id, Upload.status == "pending"
        )
    )
    return int(total or 0)


def parts_bytes(session: Session, upload_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(UploadPart.bytes), 0)).where(
            UploadPart.upload_id == upload_id
        )
    )
    return int(total or 0)


def parts_of(session: Session, upload_id: str) -> list[UploadPart]:
    return list(session.scalars(select(UploadPart).where(UploadPart.upload_id == upload_id)))


def delete_parts(session: Session, upload_id: str) -> None:
    session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))


def to_sweep(session: Session, now: int, stale_after: int, limit: int) -> Sequence[Upload]:
    """Uploads whose parts should go: pending past `expires_at` with no completion running
    (or one started `stale_after` seconds ago: its process died), and uploads that ended
    (completed, cancelled, expired) but still have part rows (their parts' removal failed)."""
    live_completion = Upload.completing_since.is_not(None) & (
        Upload.completing_since > now - stale_after
    )
    has_parts = exists().where(UploadPart.upload_id == Upload.id)
    stmt = (
        select(Upload)
        .where(
            or_(
                (Upload.status == "pending") & (Upload.expires_at <= now) & ~live_completion,
                (Upload.status != "pending") & has_parts,
            )
        )
        .order_by(Upload.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))
