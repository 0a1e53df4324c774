"""The object store port and its two adapters: a local folder and S3.

Keys are `/`-separated and relative to the store root. Every `put` is atomic for readers:
the local adapter writes a temporary file (`.tmp-*`, beside the object) and renames it; S3
makes an object visible only once its (multipart) upload completes. A process that dies
mid-`put` leaves the temporary (local) or an incomplete multipart upload (S3);
`remove_stale_temporaries` clears those that have not moved for a while.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

CHUNK = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
MULTIPART_THRESHOLD = 8 * 1024 * 1024
S3_MIN_PART = 5 * 1024 * 1024
"""S3's smallest multipart part, the last one excepted."""
TMP_PREFIX = ".tmp-"
"""How a local temporary object's file name starts; never a key's last part."""


class ObjectNotFound(KeyError):
    """No object under this key."""


class ObjectStore(Protocol):
    url: str

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store the chunks under `key` atomically; return the byte count."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def compose(self, key: str, sources: Sequence[str]) -> int:
        """Store the concatenation of the objects `sources`, in that order, under `key`
        atomically (the sources stay); return the byte count."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def iter_bytes(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""

    def delete(self, key: str) -> None:
        """Delete one object; missing is fine."""

    def delete_prefix(self, prefix: str) -> None: ...

    def upload_dir(self, local: Path, prefix: str) -> None:
        """Upload every file under `local` to `prefix` + relative path."""

    def download_dir(self, prefix: str, local: Path) -> None:
        """Download every object under `prefix` into `local`."""

    def remove_stale_temporaries(self, older_than: float) -> int:
        """Remove what interrupted `put`s left (local `.tmp-*` files, S3 incomplete multipart
        uploads under the prefix) untouched for `older_than` seconds; returns how many."""
        ...

    def key_url(self, key: str) -> str:
        """The URL of `key`, as `open_store` + `split_url` accept."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("..", ".") for p in parts):
        raise ValueError(f"invalid object key: {key!r}")
    return key


class LocalStore:
    """Objects as files under a root folder (`file:///abs/path`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-")
        total = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    total += len(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return total

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_stream(key, [data])

    def compose(self, key: str, sources: Sequence[str]) -> int:
        """A streamed concatenation into a temporary file, renamed when whole."""
        return self.put_stream(key, (c for source in sources for c in self.iter_bytes(source)))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    def iter_bytes(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e
        with f:
            while chunk := f.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    def list(self, prefix: str) -> list[str]:
        # A string prefix, as S3 has it: "jobs/a" matches "jobs/a/x" and "jobs/ab/y".
        folder = prefix.rpartition("/")[0]
        start = self.root / _check_key(folder) if folder else self.root
        if not start.is_dir():
            return []
        keys = []
        for p in start.rglob("*"):
            if p.is_file() and not p.name.startswith(TMP_PREFIX):
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete(key)
        folder = self.root / prefix.rstrip("/")
        if prefix.endswith("/") and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    def upload_dir(self, local: Path, prefix: str) -> None:
        for p in sorted(local.rglob("*")):
            if p.is_file():
                self.put_stream(prefix + p.relative_to(local).as_posix(), _file_chunks(p))

    def download_dir(self, prefix: str, local: Path) -> None:
        _download_dir(self, prefix, local)

    def remove_stale_temporaries(self, older_than: float) -> int:
        """Remove `.tmp-*` files whose writer is gone: named `.tmp-{pid}-...` by a process
        that no longer runs on this host (killed mid-upload), or not written to for
        `older_than` seconds (a live `put_stream` touches its file with every chunk, so its
        modification time stays recent)."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self.root.rglob(TMP_PREFIX + "*"):
            try:
                if path.is_file() and (_writer_gone(path.name) or path.stat().st_mtime < cutoff):
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # finished (renamed) or removed meanwhile
                continue
        return removed

    def key_url(self, key: str) -> str:
        return f"{self.url}/{_check_key(key)}"


def is_transient_error(error: BaseException) -> bool:
    """The object store cannot answer now (unreachable, throttling, a 5xx): worth another try
    later. Rules of the S3 adapter (botocore's errors); the local store has no transient ones."""
    try:
        from botocore import exceptions as s3
    except ImportError:  # pragma: no cover - botocore comes with the S3 store
        return False
    if isinstance(error, s3.ConnectionError | s3.HTTPClientError):
        return True
    if isinstance(error, s3.ClientError):
        response = error.response
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        code = response.get("Error", {}).get("Code", "")
        return status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout")
    return False


class S3Store:
    """Objects in an S3 bucket under a prefix (`s3://bucket/prefix`), through boto3."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._s3 = boto3.client("s3", endpoint_url=endpoint_url)
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Multipart upload in 8 MiB parts; one PUT when the whole body is smaller.

        The object appears only when the upload completes; any failure (including one raised
        by `chunks`) aborts the multipart upload, so nothing is left behind.
        """
        full = self._key(key)
        buf = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[dict[str, object]] = []
        try:
            for chunk in chunks:
                buf += chunk
                total += len(chunk)
                if len(buf) >= MULTIPART_THRESHOLD:
                    if upload_id is None:
                        created = self._s3.create_multipart_upload(Bucket=self.bucket, Key=full)
                        upload_id = created["UploadId"]
                    parts.append(self._upload_part(full, upload_id, len(parts) + 1, buf))
                    buf.clear()
            if upload_id is None:
                self._s3.put_object(Bucket=self.bucket, Key=full, Body=bytes(buf))
                return total
            if buf:
                parts.append(self._upload_part(full, upload_id, len(parts) + 1, buf))
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            if upload_id is not None:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            raise
        return total

    def _upload_part(
        self, full: str, upload_id: str, number: int, data: bytearray
    ) -> dict[str, object]:
        part = self._s3.upload_part(
            Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=bytes(data)
        )
        return {"ETag": part["ETag"], "PartNumber": number}

    def put_bytes(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def compose(self, key: str, sources: Sequence[str]) -> int:
        """One multipart upload whose parts are the sources, in order, copied inside S3
        (`UploadPartCopy`); nothing passes through this process but what S3's 5 MiB minimum
        part size forces: a source smaller than that (the last excepted) is read into a
        buffer that is topped up to 5 MiB from the head of the next sources (ranged reads),
        then sent as its own part. Memory holds that buffer at most. Any failure aborts the
        upload, so nothing is left behind; an empty result is a plain empty object."""
        full = self._key(key)
        sizes = [self.size(source) for source in sources]
        total = sum(sizes)
        if total < S3_MIN_PART:  # one part at most: a plain PUT of the concatenation
            self.put_stream(key, (c for s in sources for c in self.iter_bytes(s)))
            return total
        upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        parts: list[dict[str, object]] = []
        buf = bytearray()
        try:
            for source, size in zip(sources, sizes, strict=True):
                start = 0
                if buf:  # top the buffer up from this source's head
                    start = min(size, S3_MIN_PART - len(buf))
                    buf += self._range(source, 0, start)
                    if len(buf) >= S3_MIN_PART:
                        parts.append(self._upload_part(full, upload_id, len(parts) + 1, buf))
                        buf.clear()
                rest = size - start
                if rest >= S3_MIN_PART:
                    number = len(parts) + 1
                    parts.append(self._copy_part(full, upload_id, number, source, start, size))
                elif rest:
                    buf += self._range(source, start, size)
            if buf:
                parts.append(self._upload_part(full, upload_id, len(parts) + 1, buf))
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            raise
        return total

    def _range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of an object."""
        if end <= start:
            return b""
        got = self._s3.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}"
        )
        return bytes(got["Body"].read())

    def _copy_part(
        self, full: str, upload_id: str, number: int, source: str, start: int, size: int
    ) -> dict[str, object]:
        """Part `number` is `source` (`size` bytes) from byte `start` on, copied inside S3."""
        copied = self._s3.upload_part_copy(
            Bucket=self.bucket,
            Key=full,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            CopySourceRange=f"bytes={start}-{size - 1}",
        )
        return {"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": number}

    def _get(self, key: str):  # type: ignore[no-untyped-def]
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._s3.exceptions.NoSuchKey as e:
            raise ObjectNotFound(key) from e

    def get_bytes(self, key: str) -> bytes:
        return bytes(self._get(key)["Body"].read())

    def iter_bytes(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        body = self._get(key)["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            return int(
                self._s3.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
            )
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(key) from e
            raise

    def list(self, prefix: str) -> list[str]:
        keys = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + k} for k in keys[i : i + 1000]]
            self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def upload_dir(self, local: Path, prefix: str) -> None:
        for p in sorted(local.rglob("*")):
            if p.is_file():
                self._s3.upload_file(
                    str(p),
                    self.bucket,
                    self._key(prefix + p.relative_to(local).as_posix()),
                    Config=self._transfer,
                )

    def download_dir(self, prefix: str, local: Path) -> None:
        _download_dir(self, prefix, local)

    def remove_stale_temporaries(self, older_than: float) -> int:
        """Abort the incomplete multipart uploads under the prefix started, and last given a
        part, more than `older_than` seconds ago (a live `put_stream` adds a part every
        8 MiB); returns how many. Uploads outside the prefix are not this store's."""
        from botocore.exceptions import ClientError

        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        listing = {"Bucket": self.bucket, **({"Prefix": self.prefix} if self.prefix else {})}
        removed = 0
        for page in self._s3.get_paginator("list_multipart_uploads").paginate(**listing):
            for upload in page.get("Uploads", []):
                key, upload_id = upload["Key"], upload["UploadId"]
                if upload["Initiated"] >= cutoff or self._last_part(key, upload_id) >= cutoff:
                    continue
                try:
                    self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                except ClientError as e:
                    if e.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise
                    continue  # completed or aborted meanwhile
                removed += 1
        return removed

    def _last_part(self, key: str, upload_id: str) -> datetime:
        """When the upload last got a part (the epoch if it has none or is gone)."""
        from botocore.exceptions import ClientError

        last = datetime.fromtimestamp(0, UTC)
        try:
            pages = self._s3.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                for part in page.get("Parts", []):
                    last = max(last, part["LastModified"])
        except ClientError:
            pass
        return last

    def key_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def _writer_gone(name: str) -> bool:
    """True when a temporary's name holds the pid of its writer and no such process runs."""
    pid_text = name[len(TMP_PREFIX) :].partition("-")[0]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False  # it runs, as another user (or the number is no pid: leave it to age)
    return False


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _download_dir(store: ObjectStore, prefix: str, local: Path) -> None:
    keys = store.list(prefix)
    if not keys:
        raise ObjectNotFound(prefix)
    root = local.resolve()
    for key in keys:
        target = _local_target(root, prefix, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            for chunk in store.iter_bytes(key):
                f.write(chunk)


def _local_target(root: Path, prefix: str, key: str) -> Path:
    """Where `key` (listed under `prefix`) goes under `root`; a listed key that would leave
    it (`..`, `.`, an absolute or empty name: a store another party writes to may hold one)
    is refused before any path is made of it."""
    relative = key[len(prefix) :].lstrip("/") if key.startswith(prefix) else ""
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") for p in parts) or "\\" in relative:
        raise ValueError(f"refusing listed object key {key!r} under {prefix!r}")
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"refusing listed object key {key!r} under {prefix!r}")
    return target


def numbered_lines(
    store: ObjectStore, key: str, max_line: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """`(line number, line)` of a stored text file from 1, streamed (one line in memory at a
    time), a leading UTF-8 byte order mark dropped. With `max_line`, a line longer than that
    many bytes raises `ValueError` before more of it is held (a file of one endless line)."""
    rest = b""
    number = 0
    first = True
    for chunk in store.iter_bytes(key):
        if first and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM) :]
        first = False
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            number += 1
            _check_line(line, number, max_line)
            yield number, line
        _check_line(rest, number + 1, max_line)
    if rest:
        yield number + 1, rest


def _check_line(line: bytes, number: int, max_line: int | None) -> None:
    if max_line is not None and len(line) > max_line:
        raise ValueError(f"line {number} is longer than {max_line} bytes")


def open_store(url: str, endpoint_url: str | None = None) -> ObjectStore:
    """`file:///abs/path` or `s3://bucket/prefix` -> a store rooted there."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URL without a bucket: {url!r}")
        return S3Store(parsed.netloc, parsed.path, endpoint_url=endpoint_url)
    raise ValueError(
        f"unsupported object store URL {url!r}: use file:///path or s3://bucket/prefix"
    )


def split_url(url: str, endpoint_url: str | None = None) -> tuple[ObjectStore, str]:
    """An object URL -> (a store rooted at its parent folder, the object's key).

    Used where a single URL names one object or folder (`--spec s3://b/p/jobs/x/spec.json`).
    """
    parent, _, name = url.rstrip("/").rpartition("/")
    if not name:
        raise ValueError(f"not an object URL: {url!r}")
    return open_store(parent, endpoint_url), name + ("/" if url.endswith("/") else "")
