"""The vLLM resolver plugin object, called the way vLLM calls it (no server started)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from vllm.lora.resolver import LoRAResolverRegistry  # noqa: E402

from contracts.local_store import LocalStore  # noqa: E402
from contracts.pointers import ModelPointer, write_pointer  # noqa: E402
from serving import resolver as plugin  # noqa: E402

NAME = "ft:whetstone-tiny:proj-a::abc12345"


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "objects")
    prefix = "jobs/ftjob-abc12345/final/adapter/"
    config = {"peft_type": "LORA", "base_model_name_or_path": "/train/whetstone-tiny"}
    store.put_bytes(prefix + "adapter_config.json", json.dumps(config).encode())
    store.put_bytes(prefix + "adapter_model.safetensors", b"weights")
    write_pointer(
        store, ModelPointer(model=NAME, base_model="whetstone-tiny", adapter_prefix=prefix)
    )
    return store


def _resolve(resolver: plugin.WhetstoneResolver, name: str, base_path: str = "/m/whetstone-tiny"):  # type: ignore[no-untyped-def]
    return asyncio.run(resolver.resolve_lora(base_path, name))


def test_register_reads_the_environment_once(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHETSTONE_OBJECT_STORE_URL", store.url)
    monkeypatch.setenv("WHETSTONE_LORA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WHETSTONE_BASE_MODEL", "whetstone-tiny")
    monkeypatch.setattr(LoRAResolverRegistry, "resolvers", {})
    plugin.register()
    resolver = LoRAResolverRegistry.get_resolver(plugin.RESOLVER_NAME)
    assert isinstance(resolver, plugin.WhetstoneResolver)
    monkeypatch.setenv("WHETSTONE_OBJECT_STORE_URL", "file:///elsewhere")
    request = _resolve(resolver, NAME, "/served/from/here")
    assert request is not None and request.lora_name == NAME and request.lora_int_id > 0
    config = json.loads((Path(request.lora_path) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "/served/from/here"


def test_register_without_settings_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHETSTONE_OBJECT_STORE_URL", raising=False)
    with pytest.raises(ValueError, match="WHETSTONE_OBJECT_STORE_URL"):
        plugin.register()


def test_unknown_refused_and_foreign_names_resolve_to_none(
    store: LocalStore, tmp_path: Path
) -> None:
    resolver = plugin.WhetstoneResolver(store, tmp_path / "cache", "whetstone-tiny")
    assert _resolve(resolver, "ft:whetstone-tiny:proj-a::nosuch00") is None
    assert _resolve(resolver, "ft:../../objects/models") is None
    assert _resolve(resolver, "meta-llama/Llama-3-8B") is None
    other_base = plugin.WhetstoneResolver(store, tmp_path / "cache", "other-base")
    assert _resolve(other_base, NAME) is None


def test_base_model_name_defaults_to_the_folder_name(store: LocalStore, tmp_path: Path) -> None:
    resolver = plugin.WhetstoneResolver(store, tmp_path / "cache")
    assert _resolve(resolver, NAME, "/models/whetstone-tiny/") is not None
    assert _resolve(resolver, NAME, "/models/other-model") is None
