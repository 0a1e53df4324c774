"""Name -> adapter resolution through model pointers, against a real local object store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from contracts.local_store import LocalStore
from contracts.names import is_valid_name
from contracts.pointers import BadPointer, ModelPointer, pointer_key, read_pointer, write_pointer
from serving.adapters import AdapterCache, AdapterRefused

NAME = "ft:whetstone-tiny:proj-a:support:abc12345"
BASE_PATH = "/models/whetstone-tiny"


class CountingStore(LocalStore):
    """A local store that counts adapter downloads; with `together` set, a download waits
    until that many reads were made (each fetch reads its pointer first), so that every
    fetch has begun before the first download ends."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.downloads = 0
        self.reads: list[str] = []
        self.together = 0

    def get_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().get_bytes(key)

    def download_dir(self, prefix: str, local: Path) -> None:
        self.downloads += 1
        deadline = time.monotonic() + 10
        while len(self.reads) < self.together and time.monotonic() < deadline:
            time.sleep(0.01)
        super().download_dir(prefix, local)


@pytest.fixture()
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "objects")


def _publish(
    store: LocalStore, name: str = NAME, base: str = "whetstone-tiny", **config: object
) -> None:
    prefix = f"jobs/ftjob-{abs(hash(name))}/final/adapter/"
    adapter = {"peft_type": "LORA", "base_model_name_or_path": "/train/whetstone-tiny", "r": 8}
    store.put_bytes(prefix + "adapter_config.json", json.dumps({**adapter, **config}).encode())
    store.put_bytes(prefix + "adapter_model.safetensors", b"weights")
    write_pointer(store, ModelPointer(model=name, base_model=base, adapter_prefix=prefix))


def _cache(store: LocalStore, tmp_path: Path) -> AdapterCache:
    return AdapterCache(store, tmp_path / "cache", "whetstone-tiny", BASE_PATH)


def test_pointer_key_quotes_the_whole_name() -> None:
    assert pointer_key(NAME) == "models/ft%3Awhetstone-tiny%3Aproj-a%3Asupport%3Aabc12345.json"


def test_unknown_name_resolves_to_none(store: CountingStore, tmp_path: Path) -> None:
    assert _cache(store, tmp_path).fetch(NAME) is None


@pytest.mark.parametrize(
    "name",
    ["ft:../../etc/passwd", "ft:a/b", "ft:..", "ft:a\\b", "ft:a b", "whetstone-tiny", "", "ft:"],
)
def test_names_that_could_traverse_are_refused_without_reading(
    store: CountingStore, tmp_path: Path, name: str
) -> None:
    assert not is_valid_name(name)
    assert _cache(store, tmp_path).fetch(name) is None
    assert store.reads == []


def test_checkpoint_names_are_valid() -> None:
    assert is_valid_name(NAME + ":ckpt-step-40")
    assert is_valid_name("ft:whetstone-tiny:proj-a::abc12345")


def test_adapter_is_fetched_with_config_pointing_at_the_served_base(
    store: CountingStore, tmp_path: Path
) -> None:
    _publish(store)
    path = _cache(store, tmp_path).fetch(NAME)
    assert path is not None
    assert (path / "adapter_model.safetensors").read_bytes() == b"weights"
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == BASE_PATH
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp-")] == []


def test_concurrent_requests_download_once(store: CountingStore, tmp_path: Path) -> None:
    _publish(store)
    results: list[Path | None] = []
    caches = [_cache(store, tmp_path) for _ in range(6)]  # as separate resolver instances
    store.together = len(store.reads) + len(caches)
    threads = [threading.Thread(target=lambda c=c: results.append(c.fetch(NAME))) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.downloads == 1
    assert len(set(results)) == 1 and results[0] is not None
    assert _cache(store, tmp_path).fetch(NAME) == results[0]
    assert store.downloads == 1


def test_adapter_of_another_base_model_is_refused(store: CountingStore, tmp_path: Path) -> None:
    _publish(store, base="other-base")
    with pytest.raises(AdapterRefused, match="other-base"):
        _cache(store, tmp_path).fetch(NAME)
    assert store.downloads == 0


def test_adapter_that_is_not_lora_is_refused_and_not_cached(
    store: CountingStore, tmp_path: Path
) -> None:
    _publish(store, peft_type="PREFIX_TUNING")
    with pytest.raises(AdapterRefused, match="not a LoRA"):
        _cache(store, tmp_path).fetch(NAME)
    assert [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_pointer_whose_adapter_is_missing_is_refused(store: CountingStore, tmp_path: Path) -> None:
    write_pointer(
        store, ModelPointer(model=NAME, base_model="whetstone-tiny", adapter_prefix="jobs/x/")
    )
    with pytest.raises(AdapterRefused, match="no adapter"):
        _cache(store, tmp_path).fetch(NAME)


@pytest.mark.parametrize("prefix", ["../outside/", "/abs/", "jobs/../../x/", "jobs//x/"])
def test_pointer_with_traversing_prefix_is_refused(
    store: CountingStore, tmp_path: Path, prefix: str
) -> None:
    raw = {"model": NAME, "base_model": "whetstone-tiny", "adapter_prefix": prefix}
    store.put_bytes(pointer_key(NAME), json.dumps(raw).encode())
    with pytest.raises(BadPointer, match="bad pointer"):
        read_pointer(store, NAME)
    with pytest.raises(AdapterRefused, match="bad pointer"):
        _cache(store, tmp_path).fetch(NAME)


def test_pointer_naming_another_model_is_refused(store: CountingStore) -> None:
    raw = {"model": "ft:x:y::z", "base_model": "whetstone-tiny", "adapter_prefix": "jobs/x/"}
    store.put_bytes(pointer_key(NAME), json.dumps(raw).encode())
    with pytest.raises(BadPointer, match="another model"):
        read_pointer(store, NAME)


def test_deleted_pointer_stops_resolution_even_when_cached(
    store: CountingStore, tmp_path: Path
) -> None:
    _publish(store)
    cache = _cache(store, tmp_path)
    assert cache.fetch(NAME) is not None
    store.delete(pointer_key(NAME))
    assert cache.fetch(NAME) is None
