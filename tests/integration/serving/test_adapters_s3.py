"""Adapters fetched from S3 (a real moto server) through model pointers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.pointers import ModelPointer, delete_pointer, write_pointer
from contracts.store_url import open_store
from serving.adapters import AdapterCache

pytestmark = pytest.mark.slow

NAME = "ft:whetstone-tiny:proj-a:s3:abc12345"


def test_adapter_is_fetched_from_s3_and_stops_resolving_once_deleted(
    s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    store = open_store(s3_bucket, endpoint_url=s3_endpoint)
    local = tmp_path / "adapter"
    (local / "nested").mkdir(parents=True)
    config = {"peft_type": "LORA", "base_model_name_or_path": "/train/whetstone-tiny"}
    (local / "adapter_config.json").write_text(json.dumps(config))
    (local / "adapter_model.safetensors").write_bytes(b"w" * 100_000)
    (local / "nested" / "extra.txt").write_text("kept")
    store.upload_dir(local, "jobs/ftjob-abc/final/adapter/")
    pointer = ModelPointer(
        model=NAME, base_model="whetstone-tiny", adapter_prefix="jobs/ftjob-abc/final/adapter/"
    )
    write_pointer(store, pointer)

    cache = AdapterCache(store, tmp_path / "cache", "whetstone-tiny", "/srv/whetstone-tiny")
    path = cache.fetch(NAME)
    assert path is not None
    assert (path / "adapter_model.safetensors").read_bytes() == b"w" * 100_000
    assert (path / "nested" / "extra.txt").read_text() == "kept"
    assert (
        json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        == "/srv/whetstone-tiny"
    )

    delete_pointer(store, NAME)
    assert cache.fetch(NAME) is None
