"""File uploads and downloads, against the in-process stand-in (`standin.py`)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from clients.sdk import AsyncWhetstone, Whetstone

from .standin import Reply, Seen, StandIn

FILE = {"id": "file-1", "object": "file", "bytes": 12, "created_at": 1,
        "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"}  # fmt: skip


def test_upload_of_a_path_is_resent_whole_on_retry(
    standin: StandIn, tmp_path: Path, slept: list[float]
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"messages": []}\n' * 1000)
    standin.script("POST", "/files", Reply(503, {"error": {"message": "busy"}}), Reply(200, FILE))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        uploaded = client.files.create(file=path, purpose="fine-tune")
    assert uploaded.id == "file-1"
    assert len(slept) == 1
    first, second = standin.requests
    assert len(first.body) == len(second.body)
    assert path.read_bytes() in first.body and path.read_bytes() in second.body
    assert b'filename="train.jsonl"' in second.body
    assert b'name="purpose"' in second.body and b"fine-tune" in second.body


def test_the_async_client_resends_an_upload_whole_too(
    standin: StandIn, tmp_path: Path, slept: list[float]
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"messages": []}\n' * 1000)
    standin.script("POST", "/files", Reply(503, {"error": {"message": "busy"}}), Reply(200, FILE))

    async def go() -> str:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            return (await client.files.create(file=path, purpose="fine-tune")).id

    assert asyncio.run(go()) == "file-1"
    assert len(slept) == 1
    first, second = standin.requests
    assert len(first.body) == len(second.body)
    assert path.read_bytes() in first.body and path.read_bytes() in second.body


def test_upload_of_bytes_and_file_objects(standin: StandIn) -> None:
    standin.script("POST", "/files", Reply(200, FILE))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        client.files.create(file=("a.jsonl", b"abc"))
        client.files.create(file=io.BytesIO(b"def"))
    assert b"abc" in standin.requests[0].body and b'filename="a.jsonl"' in standin.requests[0].body
    assert b"def" in standin.requests[1].body


def test_content_and_download(standin: StandIn, tmp_path: Path) -> None:
    data = b"step,train_loss\n1,2.0\n" * 5000
    standin.route("GET", "/files/file-1/content", lambda _s: Reply(200, data))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        assert client.files.content("file-1") == data
        out = client.files.download("file-1", tmp_path / "metrics.csv")
    assert out.read_bytes() == data


def test_async_content_and_download(standin: StandIn, tmp_path: Path) -> None:
    data = b"step,train_loss\n1,2.0\n" * 5000
    standin.route("GET", "/files/file-1/content", lambda _s: Reply(200, data))

    async def go() -> tuple[bytes, Path]:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            whole = await client.files.content("file-1")
            return whole, await client.files.download("file-1", tmp_path / "metrics.csv")

    whole, out = asyncio.run(go())
    assert whole == data and out.read_bytes() == data


def test_list_filters_by_purpose(standin: StandIn) -> None:
    def page(seen: Seen) -> Reply:
        return Reply(200, {"object": "list", "data": [FILE], "has_more": False})

    standin.route("GET", "/files", page)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        files = list(client.files.list(purpose="fine-tune"))
    assert [f.filename for f in files] == ["train.jsonl"]
    assert standin.requests[0].query == {"purpose": "fine-tune"}


def test_validate_reports_every_bad_line_locally(tmp_path: Path) -> None:
    good = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    lines = [good, '{"messages": []}', good, "oops"] + ['{"messages": [{"role": "x"}]}'] * 10
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Whetstone(base_url="http://127.0.0.1:9", api_key="k") as client:  # no server needed
        report = client.files.validate(path)
        first = client.files.validate(path, max_reported=5)
    assert not report.ok
    assert [e.line for e in report.errors] == [2, 4, *range(5, 15)]
    assert report.error_count == 12 and len(first.errors) == 5
    assert report.examples == 2 and report.format == "chat"
