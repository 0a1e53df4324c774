"""The Uploads API through the official `openai` package against a running server: its
`uploads.upload_file_chunked` helper, unchanged, makes a File a fine-tuning job takes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openai
import pytest

from tests.corpus.malformed import GOOD, PREF_GOOD

from .conftest import Server, start_server


def test_upload_file_chunked_makes_a_file_a_job_can_use(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(GOOD * 2000)
    size = path.stat().st_size
    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="text/jsonl", purpose="fine-tune", bytes=size
    )
    assert upload.status == "completed" and upload.object == "upload"
    assert upload.bytes == size and upload.filename == "train.jsonl"
    assert upload.expires_at == upload.created_at + 3600
    assert upload.file is not None and upload.file.bytes == size
    assert client.files.retrieve(upload.file.id).filename == "train.jsonl"
    assert client.files.content(upload.file.id).read() == path.read_bytes()
    job = client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=upload.file.id)
    assert job.status == "validating_files" and job.training_file == upload.file.id


def test_upload_file_chunked_in_small_parts_with_md5(client: openai.OpenAI) -> None:
    data = PREF_GOOD * 500
    upload = client.uploads.upload_file_chunked(
        file=data,
        filename="prefs.jsonl",
        bytes=len(data),
        mime_type="application/jsonl",
        purpose="fine-tune",
        part_size=4000,  # parts cut mid-line
        md5=hashlib.md5(data).hexdigest(),
    )
    assert upload.status == "completed" and upload.file is not None
    assert client.files.content(upload.file.id).read() == data
    method: dict[str, object] = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny",
        training_file=upload.file.id,
        method=method,  # type: ignore[arg-type]
    )
    assert job.method is not None and job.method.type == "dpo"


def test_sdk_errors_for_bad_uploads(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.uploads.upload_file_chunked(
            file=b"not json\n", filename="bad.jsonl", bytes=9, mime_type="text/jsonl",
            purpose="fine-tune",
        )  # fmt: skip
    assert info.value.code == "invalid_file_format"
    upload = client.uploads.create(
        bytes=len(GOOD), filename="a.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    with pytest.raises(openai.NotFoundError):
        server.client(server.key_b).uploads.parts.create(upload.id, data=GOOD)
    assert client.uploads.cancel(upload.id).status == "cancelled"


def _rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc status")


@pytest.mark.slow
def test_200_mb_in_64_mib_parts_keeps_server_memory_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    block = GOOD * 5000
    with path.open("wb") as f:
        for _ in range(200_000_000 // len(block) + 1):
            f.write(block)
    with start_server(tmp_path) as server:
        client = server.client(timeout=600)
        client.files.list()  # the server warmed up: routes, database, store
        before = _rss_mb(server.proc.pid, "VmRSS")
        upload = client.uploads.upload_file_chunked(
            file=path, mime_type="text/jsonl", purpose="fine-tune"
        )
        growth = _rss_mb(server.proc.pid, "VmHWM") - before
    assert upload.file is not None and upload.file.bytes == path.stat().st_size
    print(f"{upload.file.bytes} bytes in 64 MiB parts: server peak RSS grew {growth:.0f} MB")
    assert growth < 60, f"server peak RSS grew {growth:.0f} MB"
