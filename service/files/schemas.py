"""Files: `FileObject`, its list and the delete answer, as OpenAI's spec has them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.db.tables import File
from service.schemas.common import ListPage, omitted_if_none

FINE_TUNE = "fine-tune"
FINE_TUNE_RESULTS = "fine-tune-results"
USER_DATA = "user_data"
UPLOAD_PURPOSES = (FINE_TUNE, USER_DATA)
"""`fine-tune` files are checked line by line as datasets; `user_data` files (any bytes, e.g.
a migration's answers of the source model) are stored as they are."""


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = omitted_if_none("Left out: Whetstone's files do not expire.")
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = omitted_if_none()

    @classmethod
    def of(cls, row: File) -> FileObject:
        return cls(
            id=row.id,
            bytes=row.bytes,
            created_at=row.created_at,
            filename=row.filename,
            purpose=row.purpose,
            status="processed" if row.status == "processed" else "error",
        )


class ListFilesResponse(ListPage[FileObject]):
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(cls, rows: list[File], has_more: bool) -> ListFilesResponse:
        data = [FileObject.of(r) for r in rows]
        return cls(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )


class DeleteFileResponse(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
