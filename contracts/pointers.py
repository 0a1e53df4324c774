"""Model pointers: which adapter in the store a served fine-tuned model name stands for.

`models/{quote(name, safe='')}.json` (docs/architecture.md, "Model pointer"): the service
writes one when a job succeeds (final model) and when a checkpoint is registered, and deletes
it when the model is deleted; the vLLM resolver and the supervisor read only these.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from contracts.names import is_valid_name
from contracts.store import ObjectNotFound, ObjectStore

POINTER_PREFIX = "models/"


class BadPointer(Exception):
    """A pointer exists but is unreadable or names another model."""


class ModelPointer(BaseModel):
    """The pointer from a served model name to its adapter."""

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


def pointer_key(name: str) -> str:
    return f"{POINTER_PREFIX}{quote(name, safe='')}.json"


def write_pointer(store: ObjectStore, pointer: ModelPointer) -> None:
    store.put_bytes(pointer_key(pointer.model), pointer.model_dump_json().encode())


def delete_pointer(store: ObjectStore, name: str) -> None:
    store.delete(pointer_key(name))


def read_pointer(store: ObjectStore, name: str) -> ModelPointer | None:
    """The pointer of `name`, or None when the name is invalid or unknown (`BadPointer`
    when it exists but cannot be used)."""
    if not is_valid_name(name):
        return None
    try:
        raw = store.get_bytes(pointer_key(name))
    except ObjectNotFound:
        return None
    try:
        pointer = ModelPointer.model_validate_json(raw)
    except ValidationError as e:
        raise BadPointer(f"bad pointer for {name!r}: {e}") from e
    if pointer.model != name:
        raise BadPointer(f"pointer of {name!r} names another model: {pointer.model!r}")
    return pointer
