"""Fine-tuned model names -> local adapter folders, through the model pointers in the store.

No vLLM and no torch here: the resolver plugin (inside vLLM) and the supervisor (warm start,
beside the service) share this code. A pointer (`contracts.pointers`) says which base model a
fine-tuned model belongs to and where its PEFT adapter lives in the store. An adapter is
downloaded once per cache folder: into a temporary folder, then renamed, under a file lock,
so concurrent requests for the same name (threads, processes, replicas sharing a volume)
download it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contracts.layout import ADAPTER_CONFIG
from contracts.pointers import BadPointer, ModelPointer, read_pointer
from contracts.store import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


class AdapterRefused(Exception):
    """The pointer exists but its adapter may not be served here (wrong base, not a LoRA,
    a broken pointer)."""


@dataclass
class AdapterCache:
    """Adapters of one base model, fetched from `store` into `cache_dir`.

    `base_model` is the served name (what pointers record); `base_model_path` is the folder
    vLLM loaded, written into each cached `adapter_config.json` as `base_model_name_or_path`.
    """

    store: ObjectStore
    cache_dir: Path
    base_model: str
    base_model_path: str

    def fetch(self, name: str) -> Path | None:
        """The local adapter folder of `name`; None when the name is not a known model.

        Raises `AdapterRefused` when the model exists but belongs to another base model or
        its adapter is not a LoRA.
        """
        try:
            pointer = read_pointer(self.store, name)
        except BadPointer as e:
            raise AdapterRefused(str(e)) from e
        if pointer is None:
            return None
        if pointer.base_model != self.base_model:
            raise AdapterRefused(
                f"{name!r} is tuned from {pointer.base_model!r}, this server serves "
                f"{self.base_model!r}"
            )
        digest = hashlib.sha256(f"{self.store.url}\n{pointer.adapter_prefix}".encode()).hexdigest()
        target = self.cache_dir / digest[:32]
        if (target / ADAPTER_CONFIG).is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f".{digest[:32]}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (target / ADAPTER_CONFIG).is_file():
                self._download(pointer, target)
        return target

    def _download(self, pointer: ModelPointer, target: Path) -> None:
        tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".tmp-"))
        try:
            try:
                self.store.download_dir(pointer.adapter_prefix, tmp)
            except ObjectNotFound as e:
                raise AdapterRefused(f"no adapter under {pointer.adapter_prefix!r}") from e
            self._check_and_rebase(tmp / ADAPTER_CONFIG, pointer)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
            log.info("fetched adapter of %s from %s", pointer.model, pointer.adapter_prefix)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _check_and_rebase(self, config_path: Path, pointer: ModelPointer) -> None:
        try:
            config = json.loads(config_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError) as e:
            raise AdapterRefused(f"{pointer.model!r}: unreadable {ADAPTER_CONFIG}") from e
        if config.get("peft_type") != "LORA":
            raise AdapterRefused(f"{pointer.model!r}: not a LoRA adapter")
        if config.get("base_model_name_or_path") != self.base_model_path:
            config["base_model_name_or_path"] = self.base_model_path
            config_path.write_text(json.dumps(config, indent=2))
