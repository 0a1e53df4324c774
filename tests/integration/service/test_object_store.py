"""One contract for every object store adapter: LocalStore and S3Store (real moto_server)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from contracts.s3_store import MULTIPART_THRESHOLD, S3_MIN_PART, S3Store
from contracts.store import ObjectNotFound, ObjectStore
from contracts.store_url import open_store, split_url

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


def _blob(size: int, seed: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(251)) * (size // 251) + b"z" * (size % 251)


# Source sizes in order: small ones must be merged to reach S3's 5 MiB part minimum (the
# last part excepted), large ones copied inside S3, some of them from an offset.
COMPOSE_CASES = {
    "large-then-small": [S3_MIN_PART + 3, 1000],
    "smalls-merged": [MIB, 2 * MIB, 3 * MIB, 7],
    "small-then-large": [MIB, S3_MIN_PART + MIB, MIB // 2, S3_MIN_PART * 2, 1],
    "all-tiny": [10, 20, 30],
    "one-empty-in-the-middle": [S3_MIN_PART, 0, S3_MIN_PART + 1],
}


@pytest.mark.parametrize("sizes", COMPOSE_CASES.values(), ids=COMPOSE_CASES.keys())
def test_compose_concatenates_in_the_given_order(store: ObjectStore, sizes: list[int]) -> None:
    keys = [f"up/parts/p{i}" for i in range(len(sizes))]
    for i, (key, size) in enumerate(zip(keys, sizes, strict=True)):
        store.put_bytes(key, _blob(size, seed=i))
    order = list(reversed(keys))  # not the order they were written in
    assert store.compose("files/whole", order) == sum(sizes)
    expected = b"".join(_blob(sizes[keys.index(k)], seed=keys.index(k)) for k in order)
    assert store.get_bytes("files/whole") == expected
    assert store.list("up/parts/") == keys, "the sources stay"
    if hasattr(store, "bucket"):  # S3: nothing left half-done
        s3 = boto3.client("s3", endpoint_url=store.endpoint_url)  # type: ignore[attr-defined]
        uploads = s3.list_multipart_uploads(Bucket=store.bucket)  # type: ignore[attr-defined]
        assert uploads.get("Uploads", []) == []


def test_compose_with_a_missing_source_leaves_nothing(store: ObjectStore) -> None:
    store.put_bytes("up/a", _blob(S3_MIN_PART + 1, seed=1))
    with pytest.raises(ObjectNotFound):
        store.compose("files/whole", ["up/a", "up/missing"])
    assert not store.exists("files/whole")


def test_s3_compose_is_one_multipart_upload_of_copied_parts(
    s3_bucket: str, s3_endpoint: str
) -> None:
    """The parts are copied inside S3 (`UploadPartCopy`), merged where under 5 MiB: the
    object's ETag says how many parts it was completed from."""
    store = open_store(s3_bucket, s3_endpoint)
    assert isinstance(store, S3Store)
    sizes = [S3_MIN_PART * 2, MIB, MIB, S3_MIN_PART + 5, 100]
    keys = [f"up/p{i}" for i in range(len(sizes))]
    for i, (key, size) in enumerate(zip(keys, sizes, strict=True)):
        store.put_bytes(key, _blob(size, seed=i))
    store.compose("files/whole", keys)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    etag = s3.head_object(Bucket=store.bucket, Key=store.prefix + "files/whole")["ETag"]
    # p0 copied whole; p1 + p2 + the head of p3 make one 5 MiB part; the rest of p3 and p4
    # (under 5 MiB together) are the last part.
    assert etag.strip('"').endswith("-3"), etag
    assert store.get_bytes("files/whole") == b"".join(
        _blob(size, seed=i) for i, size in enumerate(sizes)
    )


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


def test_local_store_removes_stale_temporaries_only(tmp_path: Path) -> None:
    """A crash mid-`put_stream` leaves its `.tmp-*` file: old ones go, live ones stay."""
    store = open_store((tmp_path / "objects").as_uri())
    store.put_bytes("files/file-a", b"kept")
    root = tmp_path / "objects"
    stale = [root / "files" / ".tmp-crashed", root / "jobs" / "j" / "ckpt" / ".tmp-x"]
    fresh = root / "files" / ".tmp-uploading"
    for path in [*stale, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    old = time.time() - 7200
    for path in [*stale, root / "files" / "file-a"]:
        os.utime(path, (old, old))
    assert store.remove_stale_temporaries(older_than=3600) == 2
    assert not any(path.exists() for path in stale)
    assert fresh.exists(), "a temporary still being written is left alone"
    assert store.get_bytes("files/file-a") == b"kept", "objects are never temporaries"
    assert store.remove_stale_temporaries(older_than=3600) == 0


def test_s3_store_aborts_stale_multipart_uploads_under_its_prefix(
    s3_bucket: str, s3_endpoint: str
) -> None:
    """A crash mid-`put_stream` leaves an incomplete multipart upload (billed, invisible)."""
    store = open_store(s3_bucket, s3_endpoint)
    assert isinstance(store, S3Store)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = store.bucket

    def start(key: str) -> str:
        upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 10)
        return upload_id

    def pending() -> set[str]:
        return {u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}

    start(store.prefix + "files/file-crashed")
    start("elsewhere/not-ours")
    assert store.remove_stale_temporaries(older_than=3600) == 0, "young uploads may be live"
    assert pending() == {store.prefix + "files/file-crashed", "elsewhere/not-ours"}
    time.sleep(1.5)  # the uploads must age past 1 s: a slow machine only makes them older
    assert store.remove_stale_temporaries(older_than=1) == 1
    assert pending() == {"elsewhere/not-ours"}, "uploads outside the prefix are not ours"
