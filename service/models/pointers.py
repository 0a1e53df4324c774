"""Model pointers in the object store: what lets vLLM's resolver serve a fine-tuned model.

`publish_model` writes `models/{quote(name)}.json` (docs/architecture.md, "Model pointer"):
`service.models.lifecycle.publish` calls it when a job succeeds and when a checkpoint is
registered. `unpublish_model` deletes it when the model is deleted (`lifecycle.delete`),
after which no vLLM replica can resolve the name any more. The pointer format itself lives
in `contracts.pointers`.
"""

from __future__ import annotations

from contracts.pointers import ModelPointer, delete_pointer, pointer_key, write_pointer
from contracts.store import ObjectStore


def publish_model(store: ObjectStore, name: str, base_model: str, adapter_prefix: str) -> None:
    write_pointer(
        store, ModelPointer(model=name, base_model=base_model, adapter_prefix=adapter_prefix)
    )


def unpublish_model(store: ObjectStore, name: str) -> None:
    """Delete the pointer of `name`; deleting one that is not there is not an error."""
    delete_pointer(store, name)


def is_published(store: ObjectStore, name: str) -> bool:
    return store.exists(pointer_key(name))
