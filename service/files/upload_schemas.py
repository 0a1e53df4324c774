"""Uploads: the create and complete requests, `Upload` and `UploadPart`, as OpenAI's spec
has them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.db import tables
from service.files.schemas import FileObject

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


class CreateUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1)
    purpose: str
    bytes: int = Field(ge=1)
    mime_type: str = Field(min_length=1)


class CompleteUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_ids: list[str] = Field(min_length=1)
    md5: str | None = None


class UploadObject(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    created_at: int
    filename: str
    bytes: int
    purpose: str
    status: UploadStatus
    expires_at: int
    file: FileObject | None = None

    @classmethod
    def of(cls, row: tables.Upload, file: tables.File | None = None) -> UploadObject:
        return cls(
            id=row.id,
            created_at=row.created_at,
            filename=row.filename,
            bytes=row.bytes,
            purpose=row.purpose,
            status=row.status,
            expires_at=row.expires_at,
            file=FileObject.of(file) if file is not None else None,
        )


class UploadPartObject(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str

    @classmethod
    def of(cls, row: tables.UploadPart) -> UploadPartObject:
        return cls(id=row.id, created_at=row.created_at, upload_id=row.upload_id)
