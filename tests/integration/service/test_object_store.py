"""One contract for every object store adapter: LocalStore and S3Store (real moto_server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from contracts.store import MULTIPART_THRESHOLD, ObjectNotFound, ObjectStore, open_store, split_url

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store((tmp_path / "objects").as_uri())
    bucket_url = request.getfixturevalue("s3_bucket")
    return open_store(bucket_url, request.getfixturevalue("s3_endpoint"))


def _chunks(total: int, size: int = MIB) -> Iterator[bytes]:
    for start in range(0, total, size):
        n = min(size, total - start)
        yield bytes((start // size + i) % 251 for i in range(256)) * (n // 256) + b"x" * (n % 256)


class Boom(RuntimeError):
    pass


def _failing(after: int) -> Iterator[bytes]:
    yield from _chunks(after)
    raise Boom("the client went away")


def test_put_get_small_and_empty(store: ObjectStore) -> None:
    store.put_bytes("a/b.txt", b"hello")
    store.put_bytes("a/empty", b"")
    assert store.get_bytes("a/b.txt") == b"hello" and store.get_bytes("a/empty") == b""
    assert store.size("a/b.txt") == 5 and store.exists("a/b.txt")
    assert not store.exists("a/missing")


def test_put_stream_multipart_round_trip(store: ObjectStore) -> None:
    total = MULTIPART_THRESHOLD * 2 + 3 * MIB + 17
    assert store.put_stream("big/blob", _chunks(total)) == total
    assert store.size("big/blob") == total
    expected = b"".join(_chunks(total))
    assert b"".join(store.iter_bytes("big/blob", chunk_size=MIB)) == expected
    assert all(len(c) <= MIB for c in store.iter_bytes("big/blob", chunk_size=MIB))


def test_put_stream_replaces_whole_object(store: ObjectStore) -> None:
    store.put_bytes("k", b"old")
    store.put_stream("k", iter([b"new", b"er"]))
    assert store.get_bytes("k") == b"newer"


@pytest.mark.parametrize("size", [3 * MIB, MULTIPART_THRESHOLD + 2 * MIB])
def test_failed_stream_leaves_nothing(store: ObjectStore, size: int) -> None:
    store.put_bytes("keep/old", b"previous")
    for key in ("fail/new", "keep/old"):
        with pytest.raises(Boom):
            store.put_stream(key, _failing(size))
    assert not store.exists("fail/new")
    assert store.get_bytes("keep/old") == b"previous"
    assert store.list("") == ["keep/old"]
    if hasattr(store, "bucket"):  # S3: no multipart upload left behind
        s3 = boto3.client("s3", endpoint_url=store.endpoint_url)  # type: ignore[attr-defined]
        uploads = s3.list_multipart_uploads(Bucket=store.bucket)  # type: ignore[attr-defined]
        assert uploads.get("Uploads", []) == []


def test_missing_objects_raise_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_bytes("nope")
    with pytest.raises(ObjectNotFound):
        store.size("nope")
    with pytest.raises(ObjectNotFound):
        b"".join(store.iter_bytes("nope"))
    store.delete("nope")  # missing is fine


def test_list_is_a_sorted_string_prefix(store: ObjectStore) -> None:
    for key in ("jobs/a/x", "jobs/a/sub/y", "jobs/ab/z", "jobs/b/w", "files/f"):
        store.put_bytes(key, b"1")
    assert store.list("jobs/a/") == ["jobs/a/sub/y", "jobs/a/x"]
    assert store.list("jobs/a") == ["jobs/a/sub/y", "jobs/a/x", "jobs/ab/z"]
    assert store.list("jobs/") == ["jobs/a/sub/y", "jobs/a/x", "jobs/ab/z", "jobs/b/w"]
    assert store.list("") == sorted(
        ["jobs/a/x", "jobs/a/sub/y", "jobs/ab/z", "jobs/b/w", "files/f"]
    )
    assert store.list("nothing/") == []


def test_delete_and_delete_prefix(store: ObjectStore) -> None:
    for key in ("jobs/a/x", "jobs/a/sub/y", "jobs/ab/z"):
        store.put_bytes(key, b"1")
    store.delete("jobs/ab/z")
    assert store.list("jobs/") == ["jobs/a/sub/y", "jobs/a/x"]
    store.put_bytes("jobs/ab/z", b"1")
    store.delete_prefix("jobs/a/")
    assert store.list("jobs/") == ["jobs/ab/z"]
    store.delete_prefix("jobs/gone/")  # nothing there is fine


def test_upload_and_download_dir(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "adapter"
    (src / "nested").mkdir(parents=True)
    (src / "adapter_config.json").write_text('{"r": 8}')
    (src / "nested" / "weights.bin").write_bytes(bytes(range(256)) * 4096)
    store.upload_dir(src, "jobs/j/final/adapter/")
    assert store.list("jobs/j/final/adapter/") == [
        "jobs/j/final/adapter/adapter_config.json",
        "jobs/j/final/adapter/nested/weights.bin",
    ]
    dst = tmp_path / "copy"
    store.download_dir("jobs/j/final/adapter/", dst)
    assert (dst / "adapter_config.json").read_text() == '{"r": 8}'
    assert (dst / "nested" / "weights.bin").read_bytes() == bytes(range(256)) * 4096
    with pytest.raises(ObjectNotFound):
        store.download_dir("jobs/none/", tmp_path / "none")


def test_keys_cannot_escape_the_root(store: ObjectStore) -> None:
    for bad in ("../x", "a/../../x", "/abs", "", "a/./b"):
        with pytest.raises(ValueError):
            store.put_bytes(bad, b"x")


def test_key_url_round_trips_through_split_url(store: ObjectStore) -> None:
    store.put_bytes("jobs/j/spec.json", b"{}")
    endpoint = getattr(store, "endpoint_url", None)
    parent, name = split_url(store.key_url("jobs/j/spec.json"), endpoint)
    assert name == "spec.json" and parent.get_bytes(name) == b"{}"
    again = open_store(store.url, endpoint)
    assert again.get_bytes("jobs/j/spec.json") == b"{}"
