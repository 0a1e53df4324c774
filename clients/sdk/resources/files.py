"""`client.files`: upload, list, retrieve, download and delete files; validate locally."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Union

from contracts import formats

from .._http import AsyncAPI, SyncAPI
from ..pagination import AsyncPage, AsyncPaginator, SyncPage
from ..types.files import FileDeleted, FileObject
from ._paths import segment

FileInput = Union[str, "os.PathLike[str]", bytes, IO[bytes], tuple[str, bytes | IO[bytes]]]


@contextmanager
def _upload(file: FileInput) -> Iterator[tuple[str, bytes | IO[bytes]]]:
    """(filename, content) for multipart; a path is opened here and streamed, not read whole."""
    if isinstance(file, tuple):
        yield file
    elif isinstance(file, bytes):
        yield ("upload.jsonl", file)
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file)
        with path.open("rb") as handle:
            yield (path.name, handle)
    else:
        yield (Path(str(getattr(file, "name", "upload.jsonl"))).name, file)


def validate(path: str | os.PathLike[str], max_reported: int | None) -> formats.Report:
    limit = sys.maxsize if max_reported is None else max_reported
    return formats.check_file(Path(path), max_reported=limit)


def _list_params(
    purpose: str | None, limit: int | None, order: str | None, after: str | None
) -> dict[str, Any]:
    return {"purpose": purpose, "limit": limit, "order": order, "after": after}


class Files:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(self, *, file: FileInput, purpose: str = "fine-tune") -> FileObject:
        """Upload a file (a path, bytes, a binary file object or `(filename, content)`)."""
        with _upload(file) as upload:
            response = self._api.request(
                "POST", "files", files={"file": upload}, data={"purpose": purpose}
            )
        return FileObject.model_validate(response.json())

    def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        order: str | None = None,
        after: str | None = None,
    ) -> SyncPage[FileObject]:
        return self._list(_list_params(purpose, limit, order, after))

    def _list(self, params: dict[str, Any]) -> SyncPage[FileObject]:
        body = self._api.request("GET", "files", params=params).json()
        return SyncPage(body, FileObject, params, self._list)

    def retrieve(self, file_id: str) -> FileObject:
        return self._api.get(f"files/{segment(file_id)}", FileObject)

    def content(self, file_id: str) -> bytes:
        """The file's bytes, verbatim."""
        return self._api.request("GET", f"files/{segment(file_id)}/content").content

    def iter_content(self, file_id: str) -> Generator[bytes, None, None]:
        """The file's bytes, verbatim, chunk by chunk as they arrive (never whole in memory).

        The request is sent on the first `next()`; closing the iterator closes it."""
        response = self._api.request("GET", f"files/{segment(file_id)}/content", stream=True)
        try:
            yield from response.iter_bytes()
        finally:
            response.close()

    def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream the file's bytes to `path` (never whole in memory); returns the path."""
        target = Path(path)
        response = self._api.request("GET", f"files/{segment(file_id)}/content", stream=True)
        try:
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        finally:
            response.close()
        return target

    def delete(self, file_id: str) -> FileDeleted:
        return self._api.delete(f"files/{segment(file_id)}", FileDeleted)

    def validate(
        self, path: str | os.PathLike[str], *, max_reported: int | None = None
    ) -> formats.Report:
        """Check a JSONL dataset locally with the server's own rules, before any upload.

        Every bad line is in `report.errors` (or the first `max_reported`); `report.ok` is
        True for a file the server accepts.
        """
        return validate(path, max_reported)


class AsyncFiles:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def create(self, *, file: FileInput, purpose: str = "fine-tune") -> FileObject:
        """Upload a file (a path, bytes, a binary file object or `(filename, content)`)."""
        with _upload(file) as upload:
            response = await self._api.request(
                "POST", "files", files={"file": upload}, data={"purpose": purpose}
            )
        return FileObject.model_validate(response.json())

    def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        order: str | None = None,
        after: str | None = None,
    ) -> AsyncPaginator[FileObject]:
        return AsyncPaginator(self._list, _list_params(purpose, limit, order, after))

    async def _list(self, params: dict[str, Any]) -> AsyncPage[FileObject]:
        body = (await self._api.request("GET", "files", params=params)).json()
        return AsyncPage(body, FileObject, params, self._list)

    async def retrieve(self, file_id: str) -> FileObject:
        return await self._api.get(f"files/{segment(file_id)}", FileObject)

    async def content(self, file_id: str) -> bytes:
        """The file's bytes, verbatim."""
        return (await self._api.request("GET", f"files/{segment(file_id)}/content")).content

    async def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream the file's bytes to `path` (never whole in memory); returns the path."""
        target = Path(path)
        response = await self._api.request("GET", f"files/{segment(file_id)}/content", stream=True)
        try:
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        finally:
            await response.aclose()
        return target

    async def delete(self, file_id: str) -> FileDeleted:
        return await self._api.delete(f"files/{segment(file_id)}", FileDeleted)

    def validate(
        self, path: str | os.PathLike[str], *, max_reported: int | None = None
    ) -> formats.Report:
        """Check a JSONL dataset locally with the server's own rules, before any upload.

        Every bad line is in `report.errors` (or the first `max_reported`); `report.ok` is
        True for a file the server accepts.
        """
        return validate(path, max_reported)
