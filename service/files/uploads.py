"""OpenAI's Uploads: a file sent in parts (64 MiB each at most, 8 GiB in all), one `File`
once completed.

- A part's `data` field is streamed to the store at `uploads/{upload_id}/parts/{part_id}`
  as it arrives (`ObjectStore.put_stream`: memory holds one body chunk, or S3's 8 MiB
  multipart buffer); a refused part leaves nothing.
- Completing reads the parts in the order given, through `contracts.formats.Checker` (the
  rules of `POST /v1/files`, one line in memory) and an MD5; only a good file is assembled,
  by `ObjectStore.compose` (local: a streamed concatenation; S3: one multipart upload of
  parts copied inside S3), at `files/{file_id}`, and recorded as a File row. A bad file is a
  400 and leaves no File and no object; the upload stays `pending` (the parts may be
  completed again in another order, or cancelled).
- A completion runs outside any transaction: it marks the upload first (`file_id`,
  `completing_since`, committed), so a second completion, a part or a cancel meanwhile is
  refused; a failure clears the mark.
- The routes' session commits at the end of the request, except where a commit here says
  why it cannot wait: a transaction (and its connection and row lock) is never held across a
  long store write, and a stored object is deleted again when its row does not commit.
- Parts go once the upload has ended: at completion, at cancel, and for an upload past its
  `expires_at` (an hour after creation) by `sweep` (at start-up, `Runtime.clean_store`, a
  few at each new upload, and all of them every `uploads_sweep_seconds` in the scheduler),
  which also retries a removal that failed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from sqlalchemy.orm import Session, sessionmaker

from contracts.formats import Checker, Report
from contracts.store import ObjectStore
from service import limits
from service.db.tables import File, Upload, UploadPart
from service.errors import InvalidRequest, not_found
from service.files import repository as files
from service.files import upload_repository as repo
from service.files.multipart import FormState, form_parser, sanitize_filename
from service.files.schemas import FINE_TUNE
from service.files.upload_schemas import CompleteUploadRequest, CreateUploadRequest
from service.ids import now, random_part
from service.keys import project_repository as projects

log = logging.getLogger(__name__)

MIB = 1024 * 1024
UPLOAD_MAX_BYTES = 8 * 1024 * MIB
PART_MAX_BYTES = 64 * MIB
UPLOAD_LIFETIME_SECONDS = 3600
COMPLETION_STALE_SECONDS = 3600
"""A completion marked longer ago than this died with its process: the upload may expire."""
SWEEP_BATCH = 20


def _status_error(upload: Upload, t: int) -> InvalidRequest | None:
    """Why parts, a completion or a cancel are refused now; `None` if they are not."""
    if upload.status == "pending" and upload.expires_at <= t:
        why = "has expired: an upload must be completed within an hour of its creation"
    elif upload.status == "pending" and upload.completing_since is not None:
        why = "is being completed"
    elif upload.status != "pending":
        why = {"completed": "is already completed", "cancelled": "was cancelled"}.get(
            upload.status, "has expired"
        )
    else:
        return None
    return InvalidRequest(f"Upload {upload.id} {why}.", code="invalid_upload_status")


def pending_upload(
    session: Session, project_id: str, upload_id: str, *, for_update: bool = False
) -> Upload:
    """The caller's upload, open to parts; 404 for a missing or foreign one, 400 otherwise."""
    upload = repo.get_upload(session, project_id, upload_id, for_update=for_update)
    if upload is None:
        raise not_found("upload", upload_id)
    if (error := _status_error(upload, now())) is not None:
        raise error
    return upload


def create_upload(
    session: Session,
    project_id: str,
    request: CreateUploadRequest,
    max_file_bytes: int,
    storage_limit: int = 0,
) -> Upload:
    """A pending upload; its declared `bytes` count against the project's storage quota
    (`storage_limit`, 0: none) from now on, so its parts can never pass it."""
    if request.purpose != FINE_TUNE:  # of OpenAI's four, the one Whetstone serves
        raise InvalidRequest(
            f"Invalid value for 'purpose': '{request.purpose}'. Uploads take 'fine-tune' "
            "(checked line by line when completed); send other files to POST /v1/files.",
            param="purpose",
            code="invalid_value",
        )
    limit = min(UPLOAD_MAX_BYTES, max_file_bytes)
    if request.bytes > limit:
        raise InvalidRequest(
            f"An upload holds {limit} bytes at most; 'bytes' is {request.bytes}.",
            param="bytes",
            code="upload_too_large",
        )
    if storage_limit > 0:  # two creations at once must not both take the last room
        projects.lock_project(session, project_id)
    left = limits.storage_left(session, project_id, storage_limit)
    if left is not None and request.bytes > left:
        raise limits.storage_exceeded(request.bytes, left, storage_limit, param="bytes")
    created = now()
    upload = Upload(
        id=f"upload_{random_part()}",
        project_id=project_id,
        filename=sanitize_filename(request.filename),
        purpose=request.purpose,
        bytes=request.bytes,
        mime_type=request.mime_type,
        status="pending",
        created_at=created,
        expires_at=created + UPLOAD_LIFETIME_SECONDS,
    )
    repo.add(session, upload)
    return upload


@dataclass
class PartBody:
    """A part request's multipart body: `data_chunks()` yields its `data` field as it comes
    and raises `InvalidRequest` at the end on any refusal (the body is read to its end, so
    the client gets its 400 rather than a reset)."""

    body: Iterator[bytes]
    boundary: bytes
    room: int
    """Bytes the upload can still take (its `bytes` less its parts so far)."""
    state: FormState = field(default_factory=lambda: FormState(file_field="data"))
    size: int = 0

    def data_chunks(self) -> Iterator[bytes]:
        parser = form_parser(self.boundary, self.state)
        limit = min(PART_MAX_BYTES, self.room)
        for chunk in self.body:
            try:
                parser.write(chunk)
            except MultipartParseError as e:
                raise InvalidRequest(f"Malformed multipart body: {e}", param="data") from e
            data = b"".join(self.state.pending)
            self.state.pending.clear()
            self.size += len(data)
            if data and self.size <= limit:
                yield data
        parser.finalize()
        self.raise_if_refused()

    def raise_if_refused(self) -> None:
        if not self.state.complete:
            raise InvalidRequest(
                "The multipart body ended before its closing boundary: the part is incomplete "
                "(cut short on the way?). Nothing was stored; send the part again.",
                param="data",
                code="incomplete_upload",
            )
        if not self.state.file_seen:
            raise InvalidRequest("Missing required parameter: 'data'.", param="data")
        if self.size == 0:
            raise InvalidRequest("The part is empty.", param="data", code="empty_part")
        if self.size > PART_MAX_BYTES:
            raise InvalidRequest(
                f"Part is too large: {self.size} bytes, the limit is {PART_MAX_BYTES} (64 MiB).",
                param="data",
                code="part_too_large",
            )
        if self.size > self.room:
            raise InvalidRequest(
                f"This part ({self.size} bytes) would take the upload past the {self.room} "
                "bytes it has left of the 'bytes' given at its creation.",
                param="data",
                code="upload_bytes_exceeded",
            )


def room_left(session: Session, upload: Upload) -> int:
    return upload.bytes - repo.parts_bytes(session, upload.id)


def add_part(
    session: Session,
    store: ObjectStore,
    project_id: str,
    upload_id: str,
    body: Iterator[bytes],
    boundary: bytes,
) -> UploadPart:
    """Check the upload, stream the part into the store (no transaction open meanwhile),
    then record it, the upload's room checked again under its row lock (parts may come in
    parallel); on any failure neither part object nor row remains."""
    upload = pending_upload(session, project_id, upload_id)
    part = PartBody(body, boundary, room=room_left(session, upload))
    session.commit()  # no transaction (nor connection) held while the part streams in
    part_id = f"part_{random_part()}"
    key = repo.part_key(upload_id, part_id)
    store.put_stream(key, part.data_chunks())
    try:
        upload = pending_upload(session, project_id, upload_id, for_update=True)
        if part.size > (room := room_left(session, upload)):
            part.room = room
            part.raise_if_refused()
        row = UploadPart(id=part_id, upload_id=upload_id, bytes=part.size, created_at=now())
        repo.add(session, row)
        session.commit()  # here, not at the request's end: a failed commit deletes the part
    except BaseException:
        session.rollback()
        store.delete(key)
        raise
    return row


def _ordered_parts(session: Session, upload: Upload, part_ids: Sequence[str]) -> list[str]:
    """The store keys of `part_ids`, checked: this upload's, each once, `bytes` in all."""
    sizes = {p.id: p.bytes for p in repo.parts_of(session, upload.id)}
    seen: set[str] = set()
    for i, part_id in enumerate(part_ids):
        if part_id not in sizes:
            raise InvalidRequest(
                f"No such part in upload {upload.id}: {part_id}.",
                param=f"part_ids[{i}]",
                code="invalid_value",
            )
        if part_id in seen:
            raise InvalidRequest(
                f"Part {part_id} is listed twice.", param=f"part_ids[{i}]", code="invalid_value"
            )
        seen.add(part_id)
    total = sum(sizes[p] for p in part_ids)
    if total != upload.bytes:
        raise InvalidRequest(
            f"The parts listed hold {total} bytes; the upload was created for {upload.bytes}.",
            param="part_ids",
            code="bytes_mismatch",
        )
    return [repo.part_key(upload.id, p) for p in part_ids]


def check_parts(store: ObjectStore, keys: Sequence[str]) -> tuple[Report, str]:
    """The file the parts make, in this order, checked line by line; and its MD5 (hex)."""
    checker = Checker()
    digest = hashlib.md5(usedforsecurity=False)
    for key in keys:
        for chunk in store.iter_bytes(key):
            checker.feed(chunk)
            digest.update(chunk)
    return checker.finish(), digest.hexdigest()


def complete_upload(
    session: Session,
    store: ObjectStore,
    project_id: str,
    upload_id: str,
    request: CompleteUploadRequest,
) -> tuple[Upload, File]:
    """Check, assemble and record the file; the upload `completed`, its parts removed."""
    upload = pending_upload(session, project_id, upload_id, for_update=True)
    keys = _ordered_parts(session, upload, request.part_ids)
    file_id = f"file-{random_part()}"
    upload.file_id, upload.completing_since = file_id, now()
    # The mark must be seen by others (a second completion, a part, a cancel are refused)
    # and the row lock released before the long check and assembly below.
    session.commit()
    try:
        report, md5 = check_parts(store, keys)
        if request.md5 is not None and request.md5.strip().lower() != md5:
            raise InvalidRequest(
                f"The parts' MD5 is {md5}, not {request.md5}.", param="md5", code="md5_mismatch"
            )
        if not report.ok:
            raise InvalidRequest(report.message(), param="part_ids", code="invalid_file_format")
        size = store.compose(files.file_key(file_id), keys)
        row = File(
            id=file_id,
            project_id=project_id,
            filename=upload.filename,
            purpose=upload.purpose,
            bytes=size,
            status="processed",
            format=report.format,
            lines=report.examples,
            created_at=now(),
        )
        files.add_file(session, row)
        upload.status, upload.completing_since = "completed", None
        session.commit()  # here, not at the request's end: a failed commit deletes the file
    except BaseException:
        session.rollback()
        store.delete(files.file_key(file_id))
        upload.file_id = upload.completing_since = None
        session.commit()  # the mark is cleared although the request fails (and rolls back)
        raise
    _remove_parts(session, store, upload)
    return upload, row


def cancel_upload(session: Session, store: ObjectStore, project_id: str, upload_id: str) -> Upload:
    upload = pending_upload(session, project_id, upload_id, for_update=True)
    upload.status = "cancelled"
    session.commit()  # cancelled before its parts go: parts never go from a pending upload
    _remove_parts(session, store, upload)
    return upload


def _remove_parts(session: Session, store: ObjectStore, upload: Upload) -> None:
    """Best effort once the upload has ended: a failure is left to `sweep`."""
    try:
        store.delete_prefix(repo.parts_prefix(upload.id))
        repo.delete_parts(session, upload.id)
        session.commit()  # here, so that a failure is logged for the sweep, not the request's
    except Exception as e:
        session.rollback()
        log.warning("could not remove the parts of %s (the sweep will): %s", upload.id, e)


def sweep(session: Session, store: ObjectStore, limit: int = SWEEP_BATCH) -> int:
    """Expire the pending uploads past `expires_at` and remove the parts of every upload that
    has ended (and a dead completion's object); returns how many uploads. The caller commits."""
    t = now()
    swept = repo.to_sweep(session, t, COMPLETION_STALE_SECONDS, limit)
    for upload in swept:
        if upload.status == "pending":
            if upload.file_id is not None:  # a completion that died before its commit
                store.delete(files.file_key(upload.file_id))
            upload.status, upload.file_id, upload.completing_since = "expired", None, None
        store.delete_prefix(repo.parts_prefix(upload.id))
        repo.delete_parts(session, upload.id)
    session.flush()
    return len(swept)


def sweep_all(sessions: sessionmaker[Session], store: ObjectStore, batch: int = 100) -> int:
    """`sweep_batch` until none is left; returns how many uploads (the scheduler runs this
    every `uploads_sweep_seconds`, so abandoned parts go even when nobody uploads)."""
    swept = 0
    while (n := sweep_batch(sessions, store, limit=batch)) > 0:
        swept += n
        if n < batch:
            break
    return swept


def sweep_batch(
    sessions: sessionmaker[Session], store: ObjectStore, limit: int = SWEEP_BATCH
) -> int:
    """One `sweep` in its own transaction, committed; returns how many uploads."""
    with sessions() as session:
        swept = sweep(session, store, limit)
        session.commit()
    return swept
