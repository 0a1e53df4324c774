"""The object store port: what every adapter does (`ObjectStore`), and what is built on it.

Keys are `/`-separated and relative to the store root. Every `put` is atomic for readers:
an object appears whole or not at all. A process that dies mid-`put` leaves a temporary
behind; `remove_stale_temporaries` clears those that have not moved for a while. The
adapters: `contracts.local_store` (a folder) and `contracts.s3_store` (S3); a store is opened
from its URL by `contracts.store_url`. Here too: the helpers adapters share (`check_key`,
`download_prefix`) and `numbered_lines`, a stored text file read line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

CHUNK = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


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


def check_key(key: str) -> str:
    """`key`, when it is one: relative, no `.` or `..` part; ValueError otherwise."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("..", ".") for p in parts):
        raise ValueError(f"invalid object key: {key!r}")
    return key


def download_prefix(store: ObjectStore, prefix: str, local: Path) -> None:
    """Every adapter's `download_dir`: each object under `prefix` into `local`, through the
    port alone."""
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
