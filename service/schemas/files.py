"""Moved to `service.files.schemas`. The fine-tuning code (`service.jobs`, being changed in
parallel) still imports it from here; this re-export goes when that code moves into its
slice."""

from service.files.schemas import (
    FINE_TUNE,
    FINE_TUNE_RESULTS,
    UPLOAD_PURPOSES,
    USER_DATA,
    DeleteFileResponse,
    FileObject,
    ListFilesResponse,
)

__all__ = [
    "FINE_TUNE",
    "FINE_TUNE_RESULTS",
    "UPLOAD_PURPOSES",
    "USER_DATA",
    "DeleteFileResponse",
    "FileObject",
    "ListFilesResponse",
]
