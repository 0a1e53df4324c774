"""The Files API through the official `openai` package against a running server."""

from __future__ import annotations

import io

import openai
import pytest

from tests.corpus.malformed import CASES, GOOD

from .conftest import Server


def _upload(client: openai.OpenAI, data: bytes, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id


def test_create_retrieve_content_delete(client: openai.OpenAI) -> None:
    data = GOOD * 4
    created = client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")
    assert created.id.startswith("file-") and created.object == "file"
    assert created.bytes == len(data) and created.purpose == "fine-tune"
    assert created.filename == "train.jsonl" and created.status == "processed"

    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == data

    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_list_auto_paginates(server: Server) -> None:
    client = server.client(server.key_b)
    ids = {_upload(client, GOOD) for _ in range(5)}
    page = client.files.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    listed = [f.id for f in client.files.list(limit=2)]  # the SDK follows `after` by itself
    assert ids <= set(listed) and len(listed) == len(set(listed))
    for file_id in ids:
        client.files.delete(file_id)


def test_bad_key_raises_authentication_error(server: Server) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        server.client("sk-whet-wrong").files.list()
    assert info.value.status_code == 401


def test_missing_and_foreign_ids_raise_not_found(server: Server) -> None:
    theirs = _upload(server.client(server.key_b), GOOD)
    mine = server.client(server.key_a)
    for file_id in ("file-doesnotexist", theirs):
        with pytest.raises(openai.NotFoundError):
            mine.files.retrieve(file_id)
        with pytest.raises(openai.NotFoundError):
            mine.files.content(file_id)
        with pytest.raises(openai.NotFoundError):
            mine.files.delete(file_id)
    assert server.client(server.key_b).files.retrieve(theirs).id == theirs


def test_bad_purpose_is_bad_request_naming_purpose(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.jsonl", io.BytesIO(GOOD)), purpose="batch")
    assert info.value.param == "purpose"  # type: ignore[attr-defined]
    assert "fine-tune" in info.value.message


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_corpus_is_bad_request_naming_the_lines(client: openai.OpenAI, case) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("bad.jsonl", io.BytesIO(case.data)), purpose="fine-tune")
    assert info.value.status_code == 400
    assert info.value.param == "file"  # type: ignore[attr-defined]
    for line in case.lines:
        assert f"line {line}:" in info.value.message
    assert case.reason in info.value.message
