"""`/v1/uploads`: a file sent in parts (create, add a part, complete, cancel)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from service.deps import ServicesDep, SessionDep
from service.files import uploads
from service.files.multipart import body_from_thread, boundary_of
from service.files.upload_schemas import (
    CompleteUploadRequest,
    CreateUploadRequest,
    UploadObject,
    UploadPartObject,
)
from service.keys.dependencies import ProjectDep

router = APIRouter(tags=["Uploads"])
log = logging.getLogger(__name__)

# The body is parsed by hand (streamed, never spooled), so FastAPI cannot infer its schema.
_ADD_PART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post("/uploads", operation_id="createUpload", response_model=UploadObject)
def create_upload(
    body: CreateUploadRequest, project: ProjectDep, session: SessionDep, services: ServicesDep
) -> UploadObject:
    """An Upload (`pending`, expiring in an hour) to add parts to."""
    try:  # a few ended uploads' parts, on the way; never a reason to refuse this one
        uploads.sweep_batch(services.sessions, services.store)
    except Exception as e:
        log.warning("could not sweep ended uploads: %s", e)
    settings = services.settings
    row = uploads.create_upload(
        session, project.id, body, settings.max_file_bytes, settings.quota_storage_bytes
    )
    return UploadObject.of(row)


@router.post(
    "/uploads/{upload_id}/parts",
    operation_id="addUploadPart",
    response_model=UploadPartObject,
    openapi_extra=_ADD_PART_BODY,
)
async def add_upload_part(
    upload_id: str,
    request: Request,
    project: ProjectDep,
    session: SessionDep,
    services: ServicesDep,
) -> UploadPartObject:
    """Add a part (64 MiB at most): its `data` streams to the object store as it arrives."""
    boundary = boundary_of(request.headers.get("content-type", ""), "a field `data`", "data")
    add = partial(
        uploads.add_part,
        session,
        services.store,
        project.id,
        upload_id,
        body_from_thread(request.stream()),
        boundary,
    )
    return UploadPartObject.of(await anyio.to_thread.run_sync(add))


@router.post(
    "/uploads/{upload_id}/complete", operation_id="completeUpload", response_model=UploadObject
)
def complete_upload(
    upload_id: str,
    body: CompleteUploadRequest,
    project: ProjectDep,
    session: SessionDep,
    services: ServicesDep,
) -> UploadObject:
    """The parts, in `part_ids` order, checked like `POST /v1/files` and made one File."""
    upload, file = uploads.complete_upload(session, services.store, project.id, upload_id, body)
    return UploadObject.of(upload, file)


@router.post(
    "/uploads/{upload_id}/cancel", operation_id="cancelUpload", response_model=UploadObject
)
def cancel_upload(
    upload_id: str, project: ProjectDep, session: SessionDep, services: ServicesDep
) -> UploadObject:
    """No more parts; the parts sent are removed."""
    return UploadObject.of(uploads.cancel_upload(session, services.store, project.id, upload_id))
