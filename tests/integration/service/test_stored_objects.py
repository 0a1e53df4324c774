"""Stored objects: a download racing a delete is whole or a clean 404; temporaries of uploads
whose process was killed are removed at start; a listed object key cannot leave the folder
it is downloaded to."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contracts.local_store import TMP_PREFIX, LocalStore
from service.app import create_app
from service.files import routes as files_api
from service.settings import Settings
from tests.unit.service.conftest import ApiClient

LINE = b'{"prompt": "p", "completion": "' + b"x" * 200 + b'"}\n'
DATA = LINE * 4000  # about 850 kB: several chunks to stream


def _upload(api: ApiClient) -> str:
    r = api.http.post(
        "/v1/files",
        headers=api.auth(),
        files={"file": ("train.jsonl", DATA, "application/jsonl")},
        data={"purpose": "user_data"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _whole_or_404(status: int, body: bytes) -> None:
    if status == 200:
        assert body == DATA, f"a 200 with {len(body)} of {len(DATA)} bytes"
    else:
        assert status == 404, (status, body[:200])
        assert b'"code":null' in body or b'"error"' in body


def test_a_delete_between_the_row_check_and_the_read_is_a_404(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = _upload(api)
    store = api.http.app.state.services.store  # type: ignore[attr-defined]
    found = files_api.repo.get_file

    def then_deleted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        row = found(*args, **kwargs)  # type: ignore[arg-type]
        store.delete(files_api.repo.file_key(file_id))  # the DELETE lands right here
        return row

    monkeypatch.setattr(files_api.repo, "get_file", then_deleted)
    r = api.http.get(f"/v1/files/{file_id}/content", headers=api.auth())
    assert r.status_code == 404, r.status_code
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_downloads_racing_deletes_are_whole_or_404(api: ApiClient) -> None:
    for _ in range(25):
        file_id = _upload(api)
        start = threading.Barrier(2)
        got: list[tuple[int, bytes]] = []

        def download(
            file_id: str = file_id,
            start: threading.Barrier = start,
            got: list[tuple[int, bytes]] = got,
        ) -> None:
            start.wait()
            r = api.http.get(f"/v1/files/{file_id}/content", headers=api.auth())
            got.append((r.status_code, r.content))

        thread = threading.Thread(target=download)
        thread.start()
        start.wait()
        deleted = api.http.delete(f"/v1/files/{file_id}", headers=api.auth())
        thread.join(timeout=30)
        assert deleted.status_code == 200
        ((status, body),) = got
        _whole_or_404(status, body)


@pytest.fixture()
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_killed_uploads_temporary_is_removed_at_start(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    """What `kill -9` mid-upload leaves: a fresh `.tmp-{pid}-...` of a process that is gone.
    A temporary of a process still running (another API process of the data folder) stays."""
    settings = Settings(data_dir=tmp_path / "data")
    folder = settings.resolved_data_dir / "objects" / "files"
    folder.mkdir(parents=True)
    killed = folder / f"{TMP_PREFIX}{dead_pid}-abc123"
    killed.write_bytes(b"x" * 1024)
    running = folder / f"{TMP_PREFIX}{live_pid}-def456"
    running.write_bytes(b"y" * 1024)
    with TestClient(create_app(settings)):
        pass
    assert not killed.exists()
    assert running.exists()


def test_a_new_temporary_names_its_writer(tmp_path: Path) -> None:
    import os

    store = LocalStore(tmp_path)
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        seen.extend(p.name for p in tmp_path.glob(f"{TMP_PREFIX}*"))
        yield b"data"

    store.put_stream("a", chunks())
    assert seen and all(n.startswith(f"{TMP_PREFIX}{os.getpid()}-") for n in seen)


class _Listing(LocalStore):
    """A store whose listing holds a key someone else wrote: `ckpt/../../escape`."""

    def list(self, prefix: str) -> list[str]:
        return [f"{prefix}../../escape", f"{prefix}ok"]

    def iter_bytes(self, key: str, chunk_size: int = 1) -> Iterator[bytes]:
        yield b"pwned"


def test_listed_keys_cannot_leave_the_download_folder(tmp_path: Path) -> None:
    store = _Listing(tmp_path / "store")
    local = tmp_path / "a" / "b" / "download"
    local.mkdir(parents=True)
    with pytest.raises(ValueError, match="refusing listed object key"):
        store.download_dir("ckpt/", local)
    assert not (tmp_path / "a" / "escape").exists()
    assert not list(tmp_path.rglob("escape"))
