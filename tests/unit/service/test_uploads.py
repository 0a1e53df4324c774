"""`/v1/uploads` in-process: parts streamed to the store, completed in the order given and
checked like `POST /v1/files`, cancel, expiry, limits and tenancy."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx  # what starlette's TestClient answers with
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from service.app import create_app
from service.db.tables import File, Upload, UploadPart
from service.files.uploads import PART_MAX_BYTES, UPLOAD_MAX_BYTES
from service.runtime import Runtime

from .conftest import ApiClient, create_key, make_settings

LINE = json.dumps(
    {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
).encode()


def dataset(lines: int) -> bytes:
    return b"\n".join([LINE] * lines) + b"\n"


def create(api: ApiClient, size: int, key: str | None = None, **over: Any) -> httpx.Response:
    body = {"filename": "train.jsonl", "purpose": "fine-tune", "bytes": size}
    body |= {"mime_type": "application/jsonl", **over}
    return api.http.post("/v1/uploads", json=body, headers=api.auth(key))


def add_part(api: ApiClient, upload_id: str, data: bytes, key: str | None = None) -> httpx.Response:
    return api.http.post(
        f"/v1/uploads/{upload_id}/parts",
        files={"data": ("blob", data, "application/octet-stream")},
        headers=api.auth(key),
    )


def complete(
    api: ApiClient, upload_id: str, part_ids: list[str], key: str | None = None, **over: Any
) -> httpx.Response:
    return api.http.post(
        f"/v1/uploads/{upload_id}/complete",
        json={"part_ids": part_ids, **over},
        headers=api.auth(key),
    )


def send(api: ApiClient, pieces: list[bytes]) -> tuple[str, list[str]]:
    """A new upload of `pieces`; its id and the part ids, in the pieces' order."""
    upload = create(api, sum(len(p) for p in pieces))
    assert upload.status_code == 200, upload.text
    ids = []
    for piece in pieces:
        r = add_part(api, upload.json()["id"], piece)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    return upload.json()["id"], ids


def store_keys(api: ApiClient, prefix: str) -> list[str]:
    return api.http.app.state.services.store.list(prefix)  # type: ignore[attr-defined,no-any-return]


def count(api: ApiClient, table: type[File] | type[UploadPart]) -> int:
    with api.http.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture(params=["sqlite", "postgres"])
def db_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiClient]:
    """`api` on SQLite and on PostgreSQL (row locks, the sweep's `SKIP LOCKED`)."""
    url = request.getfixturevalue("own_postgres_url") if request.param == "postgres" else None
    settings = make_settings(tmp_path / "data", url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))


def assert_error(r: httpx.Response, status: int, param: str | None, code: str | None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["type"] == "invalid_request_error" and error["message"]


def test_create_answers_a_pending_upload_expiring_in_an_hour(api: ApiClient) -> None:
    r = create(api, 1234)
    assert r.status_code == 200, r.text
    body = r.json()
    assert re.fullmatch(r"upload_[A-Za-z0-9]{24}", body["id"])
    assert body["object"] == "upload" and body["status"] == "pending"
    assert body["bytes"] == 1234 and body["filename"] == "train.jsonl"
    assert body["purpose"] == "fine-tune" and body["file"] is None
    assert body["expires_at"] == body["created_at"] + 3600


def test_create_refuses_bad_requests_in_openais_shape(api: ApiClient) -> None:
    assert_error(create(api, 10, purpose="assistants"), 400, "purpose", "invalid_value")
    assert_error(create(api, UPLOAD_MAX_BYTES + 1), 400, "bytes", "upload_too_large")
    assert create(api, UPLOAD_MAX_BYTES).status_code == 200, "8 GiB is allowed"
    assert_error(create(api, 0), 400, "bytes", "invalid_value")
    body = {"filename": "a.jsonl", "purpose": "fine-tune", "bytes": 3}
    r = api.http.post("/v1/uploads", json=body, headers=api.auth())
    assert_error(r, 400, "mime_type", "missing_required_parameter")
    assert_error(create(api, 10, expires_after={}), 400, "expires_after", "unknown_parameter")
    assert api.http.post("/v1/uploads", json=body).status_code == 401


def test_parts_complete_in_the_order_given_into_a_file(db_api: ApiClient) -> None:
    api = db_api
    data = dataset(30)
    pieces = [data[:100], data[100:101], data[101:]]  # cut mid-line, one byte alone
    upload_id, ids = send(api, list(reversed(pieces)))
    part = add_part(api, create(api, 5).json()["id"], b"12345").json()
    assert part["object"] == "upload.part" and re.fullmatch(r"part_[A-Za-z0-9]{24}", part["id"])
    md5 = hashlib.md5(data).hexdigest()
    r = complete(api, upload_id, list(reversed(ids)), md5=md5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed" and body["id"] == upload_id
    file = body["file"]
    assert file["object"] == "file" and file["bytes"] == len(data)
    assert file["filename"] == "train.jsonl" and file["purpose"] == "fine-tune"
    assert file["status"] == "processed" and file["id"].startswith("file-")
    content = api.http.get(f"/v1/files/{file['id']}/content", headers=api.auth())
    assert content.content == data
    listed = api.http.get("/v1/files", headers=api.auth()).json()["data"]
    assert [f["id"] for f in listed] == [file["id"]]
    assert store_keys(api, f"uploads/{upload_id}/") == [], "the parts are removed"
    assert_error(add_part(api, upload_id, b"x"), 400, None, "invalid_upload_status")
    assert_error(complete(api, upload_id, ids), 400, None, "invalid_upload_status")


def test_a_bad_file_is_a_400_that_leaves_nothing_and_keeps_the_parts(api: ApiClient) -> None:
    data = dataset(3)
    pieces = [data[:20], data[20:]]  # in the wrong order, the first line is broken
    upload_id, ids = send(api, pieces)
    r = complete(api, upload_id, list(reversed(ids)))
    assert_error(r, 400, "part_ids", "invalid_file_format")
    assert "line 1" in r.json()["error"]["message"].lower()
    assert count(api, File) == 0 and store_keys(api, "files/") == []
    # the same parts, in the right order, make a good file
    r = complete(api, upload_id, ids)
    assert r.status_code == 200, r.text
    assert count(api, File) == 1 and store_keys(api, "files/") == [
        f"files/{r.json()['file']['id']}"
    ]


def test_complete_checks_part_ids_bytes_and_md5(api: ApiClient) -> None:
    data = dataset(4)
    upload_id, ids = send(api, [data[:50], data[50:]])
    assert_error(complete(api, upload_id, ids[:1]), 400, "part_ids", "bytes_mismatch")
    assert_error(complete(api, upload_id, [ids[0], ids[0]]), 400, "part_ids[1]", "invalid_value")
    other_id, other_parts = send(api, [data])
    r = complete(api, upload_id, [ids[0], other_parts[0]])
    assert_error(r, 400, "part_ids[1]", "invalid_value")
    assert_error(complete(api, upload_id, []), 400, "part_ids", "invalid_value")
    r = complete(api, upload_id, ids, md5=hashlib.md5(b"other").hexdigest())
    assert_error(r, 400, "md5", "md5_mismatch")
    assert count(api, File) == 0
    assert complete(api, upload_id, ids).status_code == 200, "the refusals changed nothing"


def test_parts_cannot_exceed_the_upload_or_64_mib(api: ApiClient) -> None:
    upload_id = create(api, 10).json()["id"]
    assert add_part(api, upload_id, b"123456").status_code == 200
    assert_error(add_part(api, upload_id, b"12345"), 400, "data", "upload_bytes_exceeded")
    assert_error(add_part(api, upload_id, b""), 400, "data", "empty_part")
    big = create(api, PART_MAX_BYTES + 1).json()["id"]
    assert add_part(api, big, b"\n" * PART_MAX_BYTES).status_code == 200, "64 MiB is allowed"
    big = create(api, PART_MAX_BYTES + 1).json()["id"]
    assert_error(add_part(api, big, b"\n" * (PART_MAX_BYTES + 1)), 400, "data", "part_too_large")
    assert count(api, UploadPart) == 2
    assert len(store_keys(api, "uploads/")) == 2, "refused parts leave nothing"


def test_part_bodies_must_be_whole_multipart_forms(api: ApiClient) -> None:
    upload_id = create(api, 10).json()["id"]
    url = f"/v1/uploads/{upload_id}/parts"
    r = api.http.post(url, content=b"raw", headers={**api.auth(), "Content-Type": "text/plain"})
    assert_error(r, 400, "data", None)
    boundary = "b0undary"
    headers = {**api.auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="data"; filename="x"\r\n\r\n'
    cut = (head + "12345").encode()  # no closing boundary: cut short on the way
    assert_error(api.http.post(url, content=cut, headers=headers), 400, "data", "incomplete_upload")
    other = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        f"x\r\n--{boundary}--\r\n"
    )
    assert_error(api.http.post(url, content=other.encode(), headers=headers), 400, "data", None)
    assert store_keys(api, "uploads/") == [] and count(api, UploadPart) == 0


def test_cancel_removes_the_parts_and_closes_the_upload(api: ApiClient) -> None:
    upload_id, _ = send(api, [b"abc", b"def"])
    assert len(store_keys(api, f"uploads/{upload_id}/")) == 2
    r = api.http.post(f"/v1/uploads/{upload_id}/cancel", headers=api.auth())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["id"] == upload_id
    assert store_keys(api, f"uploads/{upload_id}/") == [] and count(api, UploadPart) == 0
    assert_error(add_part(api, upload_id, b"x"), 400, None, "invalid_upload_status")
    again = api.http.post(f"/v1/uploads/{upload_id}/cancel", headers=api.auth())
    assert_error(again, 400, None, "invalid_upload_status")


def test_another_projects_upload_is_404(api: ApiClient) -> None:
    upload_id, ids = send(api, [dataset(2)])
    for r in (
        add_part(api, upload_id, b"x", key=api.key_b),
        complete(api, upload_id, ids, key=api.key_b),
        api.http.post(f"/v1/uploads/{upload_id}/cancel", headers=api.auth(api.key_b)),
        add_part(api, "upload_nope", b"x"),
    ):
        assert_error(r, 404, None, "upload_not_found")
    assert complete(api, upload_id, ids).status_code == 200, "the owner still can"


def test_expired_uploads_refuse_parts_and_are_swept(db_api: ApiClient) -> None:
    api = db_api
    services = api.http.app.state.services  # type: ignore[attr-defined]
    upload_id, ids = send(api, [dataset(2)])
    kept_id, _ = send(api, [b"kept"])
    with services.sessions() as session, session.begin():
        session.execute(update(Upload).where(Upload.id == upload_id).values(expires_at=1))
    r = add_part(api, upload_id, b"x")
    assert_error(r, 400, None, "invalid_upload_status")
    assert "expired" in r.json()["error"]["message"]
    assert_error(complete(api, upload_id, ids), 400, None, "invalid_upload_status")
    with Runtime(api.settings) as runtime:
        assert runtime.sweep_uploads() == 1
    with services.sessions() as session:
        assert session.get(Upload, upload_id).status == "expired"
    assert store_keys(api, f"uploads/{upload_id}/") == []
    assert len(store_keys(api, f"uploads/{kept_id}/")) == 1, "a live upload keeps its parts"


def test_sweep_spares_a_live_completion_and_clears_a_dead_ones_object(api: ApiClient) -> None:
    services = api.http.app.state.services  # type: ignore[attr-defined]
    live_id, _ = send(api, [b"live"])
    dead_id, _ = send(api, [b"dead"])
    services.store.put_bytes("files/file-dead", b"assembled, never recorded")
    with services.sessions() as session, session.begin():
        for upload_id, since, file_id in ((live_id, 2**40, "file-live"), (dead_id, 1, "file-dead")):
            session.execute(
                update(Upload)
                .where(Upload.id == upload_id)
                .values(expires_at=1, completing_since=since, file_id=file_id)
            )
    with Runtime(api.settings) as runtime:
        assert runtime.sweep_uploads() == 1
    with services.sessions() as session:
        assert session.get(Upload, dead_id).status == "expired"
        assert session.get(Upload, live_id).status == "pending"
    assert not services.store.exists("files/file-dead")
    assert store_keys(api, f"uploads/{dead_id}/") == []
    assert len(store_keys(api, f"uploads/{live_id}/")) == 1, "a live completion reads them"


def test_the_schema_has_openais_upload_operations() -> None:
    from service.openapi import openapi_document

    paths = openapi_document()["paths"]
    ops = {op["operationId"] for path in paths.values() for op in path.values()}
    assert {"createUpload", "addUploadPart", "completeUpload", "cancelUpload"} <= ops
    part_body = paths["/v1/uploads/{upload_id}/parts"]["post"]["requestBody"]["content"]
    assert part_body["multipart/form-data"]["schema"]["required"] == ["data"]
