"""`/v1/files` in-process: uploads checked line by line, listing, content, delete, tenancy."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.db.tables import File
from service.errors import InvalidRequest
from service.files.multipart import Upload, sanitize_filename
from service.runtime import STALE_TEMPORARY_SECONDS
from service.settings import Settings
from tests.corpus.malformed import CASES, GOOD, GOOD_FILES, Case

from .conftest import ApiClient


def upload(
    api: ApiClient,
    data: bytes,
    *,
    name: str = "train.jsonl",
    purpose: str = "fine-tune",
    key: str | None = None,
):  # type: ignore[no-untyped-def]
    return api.http.post(
        "/v1/files",
        headers=api.auth(key),
        files={"file": (name, data, "application/jsonl")},
        data={"purpose": purpose},
    )


def stored_objects(api: ApiClient) -> list[str]:
    return api.http.app.state.services.store.list("files/")  # type: ignore[attr-defined,no-any-return]


def file_rows(api: ApiClient) -> int:
    with api.http.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(File)) or 0)


@pytest.mark.parametrize("name,data", GOOD_FILES, ids=[n for n, _ in GOOD_FILES])
def test_good_file_uploads_and_reads_back_verbatim(api: ApiClient, name: str, data: bytes) -> None:
    r = upload(api, data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert re.fullmatch(r"file-[A-Za-z0-9]{24}", body["id"])
    assert body["object"] == "file" and body["purpose"] == "fine-tune"
    assert body["bytes"] == len(data) and body["status"] == "processed"
    assert body["filename"] == "train.jsonl" and isinstance(body["created_at"], int)
    content = api.http.get(f"/v1/files/{body['id']}/content", headers=api.auth())
    assert content.status_code == 200 and content.content == data


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_file_is_refused_and_nothing_stays(api: ApiClient, case: Case) -> None:
    r = upload(api, case.data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "file" and error["type"] == "invalid_request_error"
    named = tuple(int(n) for n in re.findall(r"line (\d+):", error["message"]))
    assert named == case.lines
    assert case.reason in error["message"]
    assert stored_objects(api) == [] and file_rows(api) == 0


def test_unsupported_purpose_names_the_supported_ones(api: ApiClient) -> None:
    r = upload(api, GOOD, purpose="assistants")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "purpose" and "'fine-tune'" in error["message"]
    assert stored_objects(api) == [] and file_rows(api) == 0


def test_purpose_after_the_file_part_is_still_checked(api: ApiClient) -> None:
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        ).encode()
        + GOOD
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    headers = {**api.auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = api.http.post("/v1/files", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    assert stored_objects(api) == []


@pytest.mark.parametrize(
    "tail",
    [b"", b"\r\n", b"\r\n--b0undary", b"\r\n--b0undary\r\n"],
    ids=["at-a-line-edge", "before-the-boundary", "closing-boundary-cut", "another-part-cut"],
)
def test_a_body_without_its_closing_boundary_is_refused_and_nothing_stays(
    api: ApiClient, tail: bytes
) -> None:
    """A proxy that cuts an upload at a line edge leaves a body the parser reads without
    complaint: only the missing closing boundary tells it is incomplete."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
    ).encode() + GOOD
    assert GOOD.endswith(b"\n")
    headers = {**api.auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    whole = api.http.post(
        "/v1/files", content=body + f"\r\n--{boundary}--\r\n".encode(), headers=headers
    )
    assert whole.status_code == 200, whole.text
    api.http.delete(f"/v1/files/{whole.json()['id']}", headers=api.auth())
    assert stored_objects(api) == [] and file_rows(api) == 0

    r = api.http.post("/v1/files", content=body + tail, headers=headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == "file"
    assert error["code"] == "incomplete_upload"
    assert "closing boundary" in error["message"]
    assert stored_objects(api) == [] and file_rows(api) == 0


def test_missing_purpose_or_file_is_400(api: ApiClient) -> None:
    r = api.http.post("/v1/files", headers=api.auth(), files={"file": ("a.jsonl", GOOD)})
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    r = api.http.post(
        "/v1/files",
        headers=api.auth(),
        files={"other": ("a.jsonl", GOOD)},
        data={"purpose": "fine-tune"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = api.http.post("/v1/files", headers=api.auth(), json={"purpose": "fine-tune"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\data.jsonl", "data.jsonl"),
        ("/abs/x.jsonl", "x.jsonl"),
        ("..", "file"),
        ("dir/sub/../x.jsonl", "x.jsonl"),
    ],
)
def test_filenames_lose_their_path_parts(api: ApiClient, raw: str, clean: str) -> None:
    r = upload(api, GOOD, name=raw)
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == clean


def test_list_pages_newest_first_with_cursors(api: ApiClient) -> None:
    ids = [upload(api, GOOD).json()["id"] for _ in range(5)]
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if after:
            params["after"] = after
        page = api.http.get("/v1/files", params=params, headers=api.auth()).json()
        assert page["object"] == "list" and len(page["data"]) <= 2
        assert (
            page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        )
        seen += [f["id"] for f in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    created = [
        f["created_at"] for f in api.http.get("/v1/files", headers=api.auth()).json()["data"]
    ]
    assert created == sorted(created, reverse=True)
    asc = api.http.get("/v1/files", params={"order": "asc"}, headers=api.auth()).json()["data"]
    assert [f["id"] for f in asc] == list(reversed(seen))


def test_list_filters_by_purpose(api: ApiClient) -> None:
    upload(api, GOOD)
    assert (
        len(
            api.http.get("/v1/files", params={"purpose": "fine-tune"}, headers=api.auth()).json()[
                "data"
            ]
        )
        == 1
    )
    assert (
        api.http.get("/v1/files", params={"purpose": "batch"}, headers=api.auth()).json()["data"]
        == []
    )


def test_unknown_cursor_is_400(api: ApiClient) -> None:
    r = api.http.get("/v1/files", params={"after": "file-nope"}, headers=api.auth())
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


def test_delete_removes_row_and_bytes(api: ApiClient) -> None:
    file_id = upload(api, GOOD).json()["id"]
    r = api.http.delete(f"/v1/files/{file_id}", headers=api.auth())
    assert r.json() == {"id": file_id, "object": "file", "deleted": True}
    assert api.http.get(f"/v1/files/{file_id}", headers=api.auth()).status_code == 404
    assert api.http.delete(f"/v1/files/{file_id}", headers=api.auth()).status_code == 404
    assert stored_objects(api) == []


def test_another_projects_file_answers_404_like_a_missing_one(api: ApiClient) -> None:
    file_id = upload(api, GOOD, key=api.key_a).json()["id"]
    other = api.auth(api.key_b)
    for method, path in [("GET", ""), ("GET", "/content"), ("DELETE", "")]:
        theirs = api.http.request(method, f"/v1/files/{file_id}{path}", headers=other)
        missing = api.http.request(method, f"/v1/files/file-missing{path}", headers=other)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["message"].replace(file_id, "X") == missing.json()["error"][
            "message"
        ].replace("file-missing", "X")
    assert api.http.get("/v1/files", headers=other).json()["data"] == []
    assert api.http.get("/v1/files", params={"after": file_id}, headers=other).status_code == 400
    assert api.http.get(f"/v1/files/{file_id}", headers=api.auth()).status_code == 200


def test_sanitize_filename_drops_control_characters() -> None:
    assert sanitize_filename("a\x00b\x1f.jsonl") == "ab.jsonl"
    assert sanitize_filename("x/" + "n" * 300) == "n" * 255


def test_the_api_removes_stale_upload_temporaries_when_it_starts(settings: Settings) -> None:
    """An API process that crashed mid-upload left `.tmp-*` in the store; the next start
    removes those older than `STALE_TEMPORARY_SECONDS`, not a younger one (maybe live)."""
    folder = Path(settings.resolved_data_dir) / "objects" / "files"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".tmp-crashed", folder / ".tmp-live"
    stale.write_bytes(b'{"messages": [')
    fresh.write_bytes(b'{"messages": [')
    old = time.time() - STALE_TEMPORARY_SECONDS - 60
    os.utime(stale, (old, old))
    with TestClient(create_app(settings)) as http:
        assert http.get("/v1/files").status_code == 401, "the app answers"
    assert not stale.exists()
    assert fresh.exists()


def test_user_data_files_are_stored_as_they_are(api: ApiClient) -> None:
    data = b'{"index": 0, "answer": "Ostrel."}\nnot a dataset line\n'
    r = upload(api, data, name="source-answers.jsonl", purpose="user_data")
    assert r.status_code == 200, r.text
    assert r.json()["purpose"] == "user_data" and r.json()["bytes"] == len(data)
    content = api.http.get(f"/v1/files/{r.json()['id']}/content", headers=api.auth())
    assert content.content == data
    listed = api.http.get("/v1/files", params={"purpose": "user_data"}, headers=api.auth())
    assert [f["id"] for f in listed.json()["data"]] == [r.json()["id"]]


def test_user_data_named_after_a_file_that_is_no_dataset_is_refused_whole() -> None:
    # The body arrives in two chunks, the file's first lines before the purpose: those were
    # checked as a dataset and held back, so storing the rest would keep a truncated file.
    boundary = "b0undary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
        "not json\nstill not json\n"
    ).encode()
    tail = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
        f"user_data\r\n--{boundary}--\r\n"
    ).encode()
    upload = Upload(body=iter([head, tail]), boundary=boundary.encode(), max_bytes=1 << 20)
    with pytest.raises(InvalidRequest, match="before the 'file' part") as refused:
        list(upload.file_chunks())
    assert refused.value.param == "purpose"
