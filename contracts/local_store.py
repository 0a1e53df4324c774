"""The local adapter of the object store: objects as files under a root folder.

A `put` writes a temporary file (`.tmp-{pid}-*`, beside the object) and renames it when
whole, so readers never see part of an object; `remove_stale_temporaries` removes those a
killed writer left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from contracts.store import CHUNK, ObjectNotFound, check_key, download_prefix

TMP_PREFIX = ".tmp-"
"""How a local temporary object's file name starts; never a key's last part."""


class LocalStore:
    """Objects as files under a root folder (`file:///abs/path`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

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
        start = self.root / check_key(folder) if folder else self.root
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
        download_prefix(self, prefix, local)

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
        return f"{self.url}/{check_key(key)}"


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
