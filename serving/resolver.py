"""vLLM LoRA-resolver plugin: `ft:...` model names -> adapters fetched from the object store.

Loaded by vLLM through the `vllm.general_plugins` entry point `whetstone_lora_resolver`
(select it with `VLLM_PLUGINS=whetstone_lora_resolver`). vLLM asks it for any requested model
that is neither the base model nor an adapter already loaded. Settings come from the
environment once, in `register()` (the launcher writes them):

- `WHETSTONE_OBJECT_STORE_URL`: `file:///abs/path` or `s3://bucket/prefix` (required)
- `WHETSTONE_S3_ENDPOINT_URL`: S3 endpoint for MinIO or moto (optional; AWS_* credentials
  come from the usual boto3 environment)
- `WHETSTONE_LORA_CACHE_DIR`: local folder for downloaded adapters (required)
- `WHETSTONE_BASE_MODEL`: the served base model name that pointers must name (optional;
  defaults to the last part of the base model path)

It reads only the store, never the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from pathlib import Path

from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

from contracts.names import is_valid_name
from contracts.store import ObjectStore
from contracts.store_url import open_store
from serving.adapters import AdapterCache, AdapterRefused

log = logging.getLogger(__name__)

RESOLVER_NAME = "Whetstone Resolver"


class WhetstoneResolver(LoRAResolver):
    """Resolves fine-tuned model and checkpoint names through the model pointers."""

    def __init__(self, store: ObjectStore, cache_dir: Path, base_model: str | None = None) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.base_model = base_model
        self._caches: dict[str, AdapterCache] = {}

    def cache_for(self, base_model_path: str) -> AdapterCache:
        """The adapter cache of the base model vLLM serves from `base_model_path`."""
        if base_model_path not in self._caches:
            name = self.base_model or Path(base_model_path.rstrip("/")).name
            self._caches[base_model_path] = AdapterCache(
                self.store, self.cache_dir, base_model=name, base_model_path=base_model_path
            )
        return self._caches[base_model_path]

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        # vLLM passes `model_config.model`: the base model's path, not its served name.
        if not is_valid_name(lora_name):
            return None
        cache = self.cache_for(base_model_name)
        try:
            path = await asyncio.to_thread(cache.fetch, lora_name)
        except AdapterRefused as e:
            log.warning("refused adapter %s: %s", lora_name, e)
            return None
        if path is None:
            return None
        # vLLM replaces the id with its own counter; it must only be positive here.
        return LoRARequest(
            lora_name=lora_name,
            lora_int_id=zlib.crc32(lora_name.encode()) + 1,
            lora_path=str(path),
        )


def resolver_from_env(env: os._Environ[str] | dict[str, str]) -> WhetstoneResolver:
    url = env.get("WHETSTONE_OBJECT_STORE_URL")
    cache_dir = env.get("WHETSTONE_LORA_CACHE_DIR")
    if not url or not cache_dir:
        raise ValueError(
            "the Whetstone LoRA resolver needs WHETSTONE_OBJECT_STORE_URL and "
            "WHETSTONE_LORA_CACHE_DIR"
        )
    store = open_store(url, endpoint_url=env.get("WHETSTONE_S3_ENDPOINT_URL") or None)
    return WhetstoneResolver(store, Path(cache_dir), env.get("WHETSTONE_BASE_MODEL") or None)


def register() -> None:
    """vLLM plugin entry point; vLLM calls it once in each of its processes."""
    LoRAResolverRegistry.register_resolver(RESOLVER_NAME, resolver_from_env(os.environ))
