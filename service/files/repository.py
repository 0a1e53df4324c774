"""File rows. Their bytes live in the object store under `file_key(id)`."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.pagination import Order, Page, paginate
from service.db.tables import File


def file_key(file_id: str) -> str:
    """The object-store key of a file's bytes (docs/architecture.md, store layout)."""
    return f"files/{file_id}"


def add_file(session: Session, row: File) -> File:
    session.add(row)
    session.flush()
    return row


def get_file(session: Session, project_id: str, file_id: str) -> File | None:
    """The file if it exists in this project; another project's file is `None` too."""
    return session.scalar(select(File).where(File.id == file_id, File.project_id == project_id))


def find_file(session: Session, file_id: str) -> File | None:
    """The file whatever its project (a job's own file, named by the job)."""
    return session.get(File, file_id)


def stored_bytes(session: Session, project_id: str) -> int:
    """The bytes of the project's files."""
    total = session.scalar(select(func.sum(File.bytes)).where(File.project_id == project_id))
    return int(total or 0)


def list_files(
    session: Session,
    project_id: str,
    *,
    purpose: str | None,
    after: str | None,
    limit: int,
    order: Order,
) -> Page[File]:
    stmt = select(File).where(File.project_id == project_id)
    if purpose is not None:
        stmt = stmt.where(File.purpose == purpose)
    return paginate(
        session,
        stmt,
        created_at=File.created_at,
        id_=File.id,
        after=after,
        limit=limit,
        order=order,
    )


def delete_file(session: Session, row: File) -> None:
    session.delete(row)
    session.flush()
