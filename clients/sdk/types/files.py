"""File objects (`/v1/files`)."""

from __future__ import annotations

from typing import Literal

from ._base import APIObject


class FileObject(APIObject):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str | None = None
    status_details: str | None = None
    expires_at: int | None = None


class FileDeleted(APIObject):
    id: str
    object: str = "file"
    deleted: bool
