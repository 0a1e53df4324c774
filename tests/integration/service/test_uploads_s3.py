"""`/v1/uploads` on an S3 store (a real moto_server): each part is its own object, and the
completed file is one multipart upload of those parts in the order given (copied inside
S3; parts under 5 MiB merged); a refused completion leaves no object and no upload."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from contracts.s3_store import S3Store
from service.app import create_app
from service.settings import Settings
from tests.unit.service.conftest import create_key

MIB = 1024 * 1024


def dataset(at_least: int) -> bytes:
    lines = []
    size = i = 0
    while size < at_least:
        example = {
            "messages": [
                {"role": "user", "content": f"Where is lamp {i}?"},
                {"role": "assistant", "content": f"Lamp {i} hangs over the north gate. " * 3},
            ]
        }
        lines.append(json.dumps(example).encode() + b"\n")
        size += len(lines[-1])
        i += 1
    return b"".join(lines)


@pytest.fixture()
def s3_api(tmp_path: Path, s3_bucket: str, s3_endpoint: str) -> Iterator[tuple[TestClient, str]]:
    settings = Settings(
        data_dir=tmp_path / "data", object_store_url=s3_bucket, s3_endpoint_url=s3_endpoint
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield http, create_key(http, "alpha")


def test_s3_upload_is_one_multipart_object_of_the_parts_in_order(
    s3_api: tuple[TestClient, str], s3_endpoint: str
) -> None:
    http, key = s3_api
    auth = {"Authorization": f"Bearer {key}"}
    store = http.app.state.services.store  # type: ignore[attr-defined]
    assert isinstance(store, S3Store)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    data = dataset(14 * MIB)
    # 9 MiB (a multipart put itself), 1 MiB (under S3's minimum part), the rest
    pieces = [data[: 9 * MIB], data[9 * MIB : 10 * MIB], data[10 * MIB :]]
    body = {"filename": "big.jsonl", "purpose": "fine-tune", "bytes": len(data)}
    upload = http.post("/v1/uploads", json=body | {"mime_type": "text/jsonl"}, headers=auth)
    upload_id = upload.json()["id"]
    ids = {}
    for i in (2, 0, 1):  # sent out of order
        r = http.post(
            f"/v1/uploads/{upload_id}/parts", files={"data": ("p", pieces[i])}, headers=auth
        )
        assert r.status_code == 200, r.text
        ids[i] = r.json()["id"]
    assert len(store.list(f"uploads/{upload_id}/parts/")) == 3

    wrong = http.post(
        f"/v1/uploads/{upload_id}/complete",
        json={"part_ids": [ids[1], ids[0], ids[2]]},
        headers=auth,
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_file_format"
    assert store.list("files/") == []
    assert s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []

    md5 = hashlib.md5(data).hexdigest()
    r = http.post(
        f"/v1/uploads/{upload_id}/complete",
        json={"part_ids": [ids[0], ids[1], ids[2]], "md5": md5},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    file_id = r.json()["file"]["id"]
    assert store.get_bytes(f"files/{file_id}") == data
    etag = s3.head_object(Bucket=store.bucket, Key=f"{store.prefix}files/{file_id}")["ETag"]
    # part 1: the 9 MiB part copied; part 2: 1 MiB + the next 4 MiB; part 3: the rest
    assert etag.strip('"').endswith("-3"), etag
    assert s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert store.list("uploads/") == [], "the parts are removed"
    got = http.get(f"/v1/files/{file_id}/content", headers=auth)
    assert hashlib.md5(got.content).hexdigest() == md5
