"""The body of `POST /v1/files` (and of an Upload's part), streamed `multipart/form-data`: the
`file` part goes to the object store as it arrives, each line checked against the dataset
formats on the way.

Memory holds one body chunk and one dataset line at a time, whatever the file size. A body
that ends before its closing boundary (`incomplete_upload`) is refused like a bad file. A
refused upload raises from inside the chunk iterator handed to `ObjectStore.put_stream`, so
the store discards what it had written (temp file or multipart upload): nothing of it stays.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio.from_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session

from contracts.formats import Checker, Report
from contracts.store import CHUNK, ObjectStore
from service.db.tables import File
from service.errors import InvalidRequest
from service.files import repository as files
from service.files.schemas import UPLOAD_PURPOSES, USER_DATA
from service.ids import new_id, now
from service.limits import storage_exceeded

FIELD_LIMIT = 64 * 1024
FORM_MAX_FIELDS = 16
"""Most parts of a form beside its file (`purpose`, ...); more is a 400."""
FORM_MAX_FIELDS_BYTES = 64 * 1024
"""Most bytes of the form beside the file's data: every other field and every part's
headers, together; more is a 400. A form is read into memory only this far."""
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_filename(raw: str) -> str:
    """Keep the last path part only, without control characters; never empty or a dot name."""
    name = _UNSAFE.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        return "file"
    return name[:255]


def boundary_of(
    content_type: str, fields: str = "fields `file` and `purpose`", param: str = "file"
) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest(f"Expected a multipart/form-data body with {fields}.", param=param)
    return boundary


@dataclass
class FormState:
    """What the multipart callbacks have seen so far."""

    file_field: str = "file"
    """The form field whose bytes are streamed (`data` for an Upload's part)."""
    fields: dict[str, bytes] = field(default_factory=dict)
    filename: str | None = None
    file_seen: bool = False
    complete: bool = False
    """The closing boundary (`--{boundary}--`) was seen: the body was not cut short."""
    pending: list[bytes] = field(default_factory=list)
    # the part being parsed
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_field: bytes = b""
    header_value: bytes = b""
    part_name: str | None = None
    part_is_file: bool = False
    part_data: bytearray = field(default_factory=bytearray)
    field_count: int = 0
    form_bytes: int = 0
    """Bytes of part headers and non-file fields so far (`FORM_MAX_FIELDS_BYTES`)."""

    def count(self, size: int) -> None:
        self.form_bytes += size
        if self.form_bytes > FORM_MAX_FIELDS_BYTES:
            raise InvalidRequest(
                f"The form's fields and part headers beside the file hold more than "
                f"{FORM_MAX_FIELDS_BYTES} bytes.",
                param=self.part_name,
                code="form_too_large",
            )


def form_parser(boundary: bytes, state: FormState) -> MultipartParser:
    def on_part_begin() -> None:
        state.headers.clear()
        state.part_name, state.part_is_file = None, False
        state.part_data.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.count(end - start)
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.count(end - start)
        state.header_value += data[start:end]

    def on_header_end() -> None:
        state.headers[state.header_field.lower()] = state.header_value
        state.header_field, state.header_value = b"", b""

    def on_headers_finished() -> None:
        _, params = parse_options_header(state.headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        state.part_name = name
        if name == state.file_field and not state.file_seen:
            state.file_seen, state.part_is_file = True, True
            raw = params.get(b"filename", b"file").decode("utf-8", "replace")
            state.filename = sanitize_filename(raw)
            return
        state.field_count += 1
        if state.field_count > FORM_MAX_FIELDS:
            raise InvalidRequest(
                f"Too many form fields: at most {FORM_MAX_FIELDS} beside the file.",
                param=name or None,
                code="too_many_form_fields",
            )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.part_is_file:
            state.pending.append(data[start:end])
        elif len(state.part_data) + end - start <= FIELD_LIMIT:
            state.count(end - start)
            state.part_data += data[start:end]
        else:
            raise InvalidRequest(
                f"Form field '{state.part_name}' is too long.", param=state.part_name
            )

    def on_part_end() -> None:
        if not state.part_is_file and state.part_name:
            state.fields[state.part_name] = bytes(state.part_data)

    def on_end() -> None:
        state.complete = True

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_end": on_end,
    }
    return MultipartParser(boundary, callbacks)  # type: ignore[arg-type]


@dataclass
class Upload:
    """One upload in flight: feed `file_chunks()` to the store, then read the results."""

    body: Iterator[bytes]
    boundary: bytes
    max_bytes: int
    storage_left: int | None = None  # bytes the project's storage quota still allows
    storage_limit: int = 0
    state: FormState = field(default_factory=FormState)
    checker: Checker = field(default_factory=Checker)
    size: int = 0
    cut: bool = False
    """Bytes stopped flowing to the store before the body ended (the file was refused)."""

    @property
    def purpose(self) -> str | None:
        raw = self.state.fields.get("purpose")
        return raw.decode("utf-8", "replace").strip() if raw is not None else None

    @property
    def report(self) -> Report:
        return self.checker.report

    def file_chunks(self) -> Iterator[bytes]:
        """The file's bytes as they arrive; raises `InvalidRequest` at the end on any refusal.

        Once the file is known bad (or its purpose is), bytes stop flowing to the store but
        the body is still read to its end, so the client gets its 400 rather than a reset.
        """
        parser = form_parser(self.boundary, self.state)
        storing = True
        for chunk in self.body:
            try:
                parser.write(chunk)
            except MultipartParseError as e:
                raise InvalidRequest(f"Malformed multipart body: {e}", param="file") from e
            if not self.state.pending:
                continue
            data = b"".join(self.state.pending)
            self.state.pending.clear()
            self.size += len(data)
            if storing and not self._purpose_ok_so_far():
                storing = False
            if storing:
                if self.purpose != USER_DATA:
                    self.checker.feed(data)
                storing = self.checker.report.ok and self.size <= self.max_bytes
                storing = storing and not self._over_quota()
                if storing:
                    yield data
                else:
                    self.cut = True
        parser.finalize()
        self._raise_if_refused()

    def _over_quota(self) -> bool:
        return self.storage_left is not None and self.size > self.storage_left

    def _purpose_ok_so_far(self) -> bool:
        purpose = self.purpose
        return purpose is None or purpose in UPLOAD_PURPOSES

    def _raise_if_refused(self) -> None:
        if not self.state.complete:
            # The parser takes a body cut at a line edge (a proxy truncating the upload) for
            # one still coming: only the missing closing boundary shows it is incomplete.
            raise InvalidRequest(
                "The multipart body ended before its closing boundary: the upload is "
                "incomplete (cut short on the way?). Nothing was stored; upload the file again.",
                param="file",
                code="incomplete_upload",
            )
        purpose = self.purpose
        if purpose is None:
            raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in UPLOAD_PURPOSES:
            supported = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
            raise InvalidRequest(
                f"Invalid value for 'purpose': '{purpose}'. Supported purposes: {supported}.",
                param="purpose",
                code="invalid_value",
            )
        if not self.state.file_seen:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file")
        if self.size > self.max_bytes:
            raise InvalidRequest(
                f"File is too large: {self.size} bytes, the limit is {self.max_bytes}.",
                param="file",
                code="file_too_large",
            )
        if self._over_quota():
            assert self.storage_left is not None
            raise storage_exceeded(self.size, self.storage_left, self.storage_limit)
        if purpose == USER_DATA:
            if self.cut:  # its first bytes came before `purpose` and were checked as a dataset
                raise InvalidRequest(
                    "A 'user_data' file is stored as it is only when the 'purpose' field comes "
                    "before the 'file' part; send it first.",
                    param="purpose",
                )
            return
        report = self.checker.finish()
        if not report.ok:
            raise InvalidRequest(report.message(), param="file", code="invalid_file_format")


def body_from_thread(stream: AsyncIterator[bytes], min_chunk: int = CHUNK) -> Iterator[bytes]:
    """Iterate an async request body from a worker thread (started by `anyio.to_thread`),
    in chunks of at least `min_chunk` bytes (except the last)."""

    async def next_chunk() -> bytes | None:
        parts: list[bytes] = []
        size = 0
        async for part in stream:
            parts.append(part)
            size += len(part)
            if size >= min_chunk:
                break
        return b"".join(parts) if parts else None

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        yield chunk


def save_upload(session: Session, store: ObjectStore, project_id: str, upload: Upload) -> File:
    """Stream the upload into the store and record it; on any failure neither remains."""
    file_id = new_id("file")
    key = files.file_key(file_id)
    store.put_stream(key, upload.file_chunks())
    try:
        row = files.add_file(
            session,
            File(
                id=file_id,
                project_id=project_id,
                filename=upload.state.filename or "file",
                purpose=upload.purpose or "",
                bytes=upload.size,
                status="processed",
                format=upload.report.format if upload.purpose != USER_DATA else None,
                lines=upload.report.examples if upload.purpose != USER_DATA else None,
                created_at=now(),
            ),
        )
        session.commit()  # here, not at the request's end: a failed commit deletes the bytes
    except BaseException:
        store.delete(key)
        raise
    return row
