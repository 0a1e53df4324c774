"""An object store opened from its URL: `file:///abs/path` (`contracts.local_store`) or
`s3://bucket/prefix` (`contracts.s3_store`), or split from the URL of one object in it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from contracts.local_store import LocalStore
from contracts.s3_store import S3Store
from contracts.store import ObjectStore


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
