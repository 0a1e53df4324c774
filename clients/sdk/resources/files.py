"""`client.files`: upload, list, retrieve, download and delete files; validate locally."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Union

from contracts import formats

from .._core import Call, content, parsed
from .._flow import Flow
from .._http import AsyncAPI, SyncAPI
from .._resource import A, Resource, endpoint, listing
from ..pagination import Listing
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


def _content(file_id: str) -> Call[bytes]:
    return Call("GET", f"files/{segment(file_id)}/content", content)


class _Files(Resource[A]):
    @endpoint
    def create(self, *, file: FileInput, purpose: str = "fine-tune") -> Flow[FileObject]:
        """Upload a file (a path, bytes, a binary file object or `(filename, content)`)."""
        with _upload(file) as upload:
            form = {"file": upload}
            created: FileObject = yield Call(
                "POST", "files", parsed(FileObject), files=form, data={"purpose": purpose}
            )
        return created

    @listing
    def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        order: str | None = None,
        after: str | None = None,
    ) -> Listing[FileObject]:
        params = {"purpose": purpose, "limit": limit, "order": order, "after": after}
        return Listing("files", FileObject, params)

    @endpoint
    def retrieve(self, file_id: str) -> Call[FileObject]:
        return Call("GET", f"files/{segment(file_id)}", parsed(FileObject))

    @endpoint
    def content(self, file_id: str) -> Call[bytes]:
        """The file's bytes, verbatim."""
        return _content(file_id)

    @endpoint
    def delete(self, file_id: str) -> Call[FileDeleted]:
        return Call("DELETE", f"files/{segment(file_id)}", parsed(FileDeleted))

    def validate(
        self, path: str | os.PathLike[str], *, max_reported: int | None = None
    ) -> formats.Report:
        """Check a JSONL dataset locally with the server's own rules, before any upload.

        Every bad line is in `report.errors` (or the first `max_reported`); `report.ok` is
        True for a file the server accepts.
        """
        limit = sys.maxsize if max_reported is None else max_reported
        return formats.check_file(Path(path), max_reported=limit)


class Files(_Files[SyncAPI]):
    def iter_content(self, file_id: str) -> Generator[bytes, None, None]:
        """The file's bytes, verbatim, chunk by chunk as they arrive (never whole in memory).

        The request is sent on the first `next()`; closing the iterator closes it."""
        response = self._api.send(_content(file_id), stream=True)
        try:
            yield from response.iter_bytes()
        finally:
            response.close()

    def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream the file's bytes to `path` (never whole in memory); returns the path."""
        target = Path(path)
        response = self._api.send(_content(file_id), stream=True)
        try:
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        finally:
            response.close()
        return target


class AsyncFiles(_Files[AsyncAPI]):
    async def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream the file's bytes to `path` (never whole in memory); returns the path."""
        target = Path(path)
        response = await self._api.send(_content(file_id), stream=True)
        try:
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        finally:
            await response.aclose()
        return target
