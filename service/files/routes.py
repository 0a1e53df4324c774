"""`/v1/files`: upload (streamed and checked line by line), list, retrieve, content, delete."""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from contracts.store import ObjectNotFound
from service import limits
from service.db.tables import File
from service.deps import ServicesDep, SessionDep, StoreDep
from service.errors import not_found
from service.files import repository as repo
from service.files.multipart import Upload, body_from_thread, boundary_of, save_upload
from service.files.schemas import DeleteFileResponse, FileObject, ListFilesResponse
from service.keys.dependencies import ProjectDep
from service.schemas.params import After

router = APIRouter(tags=["Files"])

# The body is parsed by hand (streamed, never spooled), so FastAPI cannot infer its schema.
_CREATE_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": ["fine-tune", "user_data"]},
                    },
                }
            }
        },
    }
}


@router.post(
    "/files",
    operation_id="createFile",
    response_model=FileObject,
    openapi_extra=_CREATE_FILE_BODY,
)
async def create_file(
    request: Request, project: ProjectDep, session: SessionDep, services: ServicesDep
) -> FileObject:
    """Upload a JSONL dataset (purpose `fine-tune`), checked line by line as it streams, or
    any file (purpose `user_data`), stored as it is."""
    settings = services.settings
    upload = Upload(
        body=body_from_thread(request.stream()),
        boundary=boundary_of(request.headers.get("content-type", "")),
        max_bytes=settings.max_file_bytes,
        storage_limit=settings.quota_storage_bytes,
    )

    def save() -> File:
        # Two uploads of one project at once may together pass the quota by the smaller one.
        upload.storage_left = limits.storage_left(session, project.id, upload.storage_limit)
        return save_upload(session, services.store, project.id, upload)

    return FileObject.of(await anyio.to_thread.run_sync(save))


@router.get("/files", operation_id="listFiles", response_model=ListFilesResponse)
def list_files(
    project: ProjectDep,
    session: SessionDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: After = None,
) -> ListFilesResponse:
    page = repo.list_files(
        session, project.id, purpose=purpose, after=after, limit=limit, order=order
    )
    return ListFilesResponse.of(page.items, page.has_more)


@router.get("/files/{file_id}", operation_id="retrieveFile", response_model=FileObject)
def retrieve_file(file_id: str, project: ProjectDep, session: SessionDep) -> FileObject:
    row = repo.get_file(session, project.id, file_id)
    if row is None:
        raise not_found("file", file_id)
    return FileObject.of(row)


@router.get(
    "/files/{file_id}/content",
    operation_id="downloadFile",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_file(
    file_id: str, project: ProjectDep, session: SessionDep, store: StoreDep
) -> StreamingResponse:
    """The file's bytes. The object is opened before the answer starts, so a DELETE racing
    this download gives either the whole file (an open object reads to its end) or a 404,
    never a 200 cut short."""
    row = repo.get_file(session, project.id, file_id)
    if row is None:
        raise not_found("file", file_id)
    chunks = store.iter_bytes(repo.file_key(row.id))
    try:
        first = next(chunks, b"")  # opens the object: gone meanwhile -> 404
    except ObjectNotFound as e:
        raise not_found("file", file_id) from e
    return StreamingResponse(
        itertools.chain((first,), chunks),
        media_type="application/octet-stream",
        headers={"Content-Length": str(row.bytes)},
    )


@router.delete("/files/{file_id}", operation_id="deleteFile", response_model=DeleteFileResponse)
def delete_file(
    file_id: str, project: ProjectDep, session: SessionDep, store: StoreDep
) -> DeleteFileResponse:
    row = repo.get_file(session, project.id, file_id)
    if row is None:
        raise not_found("file", file_id)
    repo.delete_file(session, row)
    session.commit()  # the row goes before its bytes: never a listed file without content
    store.delete(repo.file_key(file_id))
    return DeleteFileResponse(id=file_id, deleted=True)
