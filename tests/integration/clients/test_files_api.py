"""The SDK's files resource against the real Whetstone server (sync and async)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clients.sdk import (
    AsyncWhetstone,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    Whetstone,
)

from .conftest import Server

EXAMPLE = {"messages": [{"role": "user", "content": "Capital of Veloria?"},
                        {"role": "assistant", "content": "Ostrel."}]}  # fmt: skip


def dataset(path: Path, n: int = 3) -> Path:
    path.write_text("".join(json.dumps(EXAMPLE) + "\n" for _ in range(n)))
    return path


def test_files_round_trip(server: Server, tmp_path: Path) -> None:
    path = dataset(tmp_path / "train.jsonl")
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        assert client.files.validate(path).ok
        created = client.files.create(file=path, purpose="fine-tune")
        assert (created.filename, created.purpose, created.bytes) == (
            "train.jsonl", "fine-tune", path.stat().st_size,
        )  # fmt: skip
        assert client.files.retrieve(created.id) == created
        assert client.files.content(created.id) == path.read_bytes()
        copy = client.files.download(created.id, tmp_path / "copy.jsonl")
        assert copy.read_bytes() == path.read_bytes()
        assert client.files.delete(created.id).deleted
        with pytest.raises(NotFoundError):
            client.files.retrieve(created.id)


def test_files_list_pages_through_everything(server: Server, tmp_path: Path) -> None:
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        ids = {
            client.files.create(file=dataset(tmp_path / f"d{i}.jsonl", i + 1)).id for i in range(5)
        }
        first = client.files.list(limit=2)
        assert len(first.data) == 2 and first.has_more
        seen = [f.id for f in client.files.list(limit=2, purpose="fine-tune")]
        pages = list(client.files.list(limit=2).iter_pages())
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))  # no file twice across pages
    assert len(pages) >= 3


def test_bad_file_is_refused_with_the_first_bad_lines(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(EXAMPLE) + "\n{oops\n")
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        with pytest.raises(BadRequestError) as info:
            client.files.create(file=path)
    assert info.value.param == "file"
    assert "line 2" in info.value.message


def test_wrong_key_is_an_authentication_error(server: Server) -> None:
    with Whetstone(base_url=server.url, api_key="wh-wrong") as client:
        with pytest.raises(AuthenticationError):
            client.files.list()


def test_async_files(server: Server, tmp_path: Path) -> None:
    paths = [dataset(tmp_path / f"a{i}.jsonl", i + 1) for i in range(3)]

    async def go() -> None:
        async with AsyncWhetstone(base_url=server.url, api_key=server.api_key) as client:
            created = await asyncio.gather(*(client.files.create(file=p) for p in paths))
            ids = {f.id for f in created}
            listed = [f.id async for f in client.files.list(limit=1)]
            assert ids <= set(listed)
            first = await client.files.list(limit=1)
            assert len(first.data) == 1 and first.has_more
            one = created[0]
            assert (await client.files.retrieve(one.id)).id == one.id
            assert await client.files.content(one.id) == paths[0].read_bytes()
            out = await client.files.download(one.id, tmp_path / "copy.jsonl")
            assert out.read_bytes() == paths[0].read_bytes()
            assert (await client.files.delete(one.id)).deleted
            with pytest.raises(NotFoundError):
                await client.files.retrieve(one.id)

    asyncio.run(go())
