"""Fine-tuned model names -> local adapter folders, through the model pointers in the store.

No vLLM and no torch here: the resolver plugin (inside vLLM) and the supervisor (warm start,
beside the service) share this code. A pointer `models/{quote(name, safe='')}.json` says which
base model a fine-tuned model belongs to and where its PEFT adapter lives in the store. An
adapter is downloaded once per cache folder: into a temporary folder, then renamed, under a
file lock, so concurrent requests for the same name (threads, processes, replicas sharing a
volume) download it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from trainer.store import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

POINTER_PREFIX = "models/"
ADAPTER_CONFIG = "adapter_config.json"
# `ft:{base}:{project}:{suffix}:{short_id}` and `...:ckpt-step-{N}`: letters, digits and
# `._-` between colons. Anything else (slashes, backslashes, `..`, spaces) is refused.
_NAME = re.compile(r"ft:[A-Za-z0-9._:-]{1,250}")


class AdapterRefused(Exception):
    """The pointer exists but its adapter may not be served here (wrong base, not a LoRA)."""


class ModelPointer(BaseModel):
    """The pointer from a served model name to its adapter (docs/architecture.md)."""

    model_config = ConfigDict(frozen=True)

    model: str
    base_model: str
    adapter_prefix: str

    @field_validator("adapter_prefix")
    @classmethod
    def _relative_folder(cls, value: str) -> str:
        parts = value.rstrip("/").split("/")
        if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"adapter_prefix is not a relative store folder: {value!r}")
        return value.rstrip("/") + "/"


def is_valid_name(name: str) -> bool:
    """True for names this resolver may look up: `ft:...` without any path trickery."""
    return _NAME.fullmatch(name) is not None and ".." not in name


def pointer_key(name: str) -> str:
    return f"{POINTER_PREFIX}{quote(name, safe='')}.json"


def write_pointer(store: ObjectStore, pointer: ModelPointer) -> None:
    store.put_bytes(pointer_key(pointer.model), pointer.model_dump_json().encode())


def delete_pointer(store: ObjectStore, name: str) -> None:
    store.delete(pointer_key(name))


def read_pointer(store: ObjectStore, name: str) -> ModelPointer | None:
    """The pointer of `name`, or None when the name is invalid or unknown."""
    if not is_valid_name(name):
        return None
    try:
        raw = store.get_bytes(pointer_key(name))
    except ObjectNotFound:
        return None
    try:
        pointer = ModelPointer.model_validate_json(raw)
    except ValidationError as e:
        raise AdapterRefused(f"bad pointer for {name!r}: {e}") from e
    if pointer.model != name:
        raise AdapterRefused(f"pointer of {name!r} names another model: {pointer.model!r}")
    return pointer


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
        pointer = read_pointer(self.store, name)
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
