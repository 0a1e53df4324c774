"""The S3 adapter of the object store: objects in a bucket under a prefix, through boto3.

An object appears only when its (multipart) upload completes; a failed `put` aborts the
upload, and `remove_stale_temporaries` aborts those a killed writer left. Which of S3's
errors are worth another try later is this adapter's rule too (`is_transient_error`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.store import CHUNK, ObjectNotFound, check_key, download_prefix

MULTIPART_THRESHOLD = 8 * 1024 * 1024
S3_MIN_PART = 5 * 1024 * 1024
"""S3's smallest multipart part, the last one excepted."""


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
        return self.prefix + check_key(key)

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
        download_prefix(self, prefix, local)

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
