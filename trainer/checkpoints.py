"""Checkpoints in the object store: the PEFT adapter, the resume state, then `COMPLETE`.

The adapter folder is exactly what `save_pretrained` writes, so peft and vLLM load it as is.
The resume state holds the optimiser, the scheduler, every RNG (torch, CUDA, numpy, python),
the data position, the metrics so far and the last epoch's per-example losses so far, in
formats that run no code when read (`trainer.resume_state`: safetensors and JSON;
`position.json`). `COMPLETE` goes up last, so a reader never sees a half-written checkpoint;
retention deletes a checkpoint's `COMPLETE` first for the same reason.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from contracts import layout
from contracts.spec import KEEP_CHECKPOINTS
from contracts.store import ObjectNotFound, ObjectStore
from contracts.store_url import open_store
from trainer import resume_state

POSITION = "position.json"


class UnsafeCheckpoint(Exception):
    """A checkpoint whose resume state cannot be read without running code (or at all)."""


@dataclass
class Position:
    """Where training stands: the next batch to train is `batch` of `epoch` (both from 0)."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    trained_tokens: int = 0
    metrics_rows: list[dict[str, Any]] = field(default_factory=list)
    # Supervised: each training example's mean loss in the last epoch so far, by its index
    # (a string: JSON keys), for the outliers of the evaluation report (`trainer.outliers`).
    example_losses: dict[str, float] = field(default_factory=dict)

    @property
    def epoch_number(self) -> int:
        """The epoch (from 1) the last step belonged to."""
        return self.epoch if self.batch == 0 else self.epoch + 1


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.random.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    store: ObjectStore,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    position: Position,
    kind: Literal["epoch", "step"],
    extra: dict[str, Any] | None = None,
) -> str:
    """Upload one checkpoint under the job folder `store` is rooted at; return its folder key.
    `extra` goes into the resume state beside the optimiser (DPO's reference log-probs)."""
    folder = layout.checkpoint_dir(position.step)
    store.delete_prefix(folder)  # leftovers of an attempt that died while writing this step
    with tempfile.TemporaryDirectory(prefix="whetstone-ckpt-") as tmp:
        adapter, state = Path(tmp, "adapter"), Path(tmp, "state")
        model.save_pretrained(adapter)
        state.mkdir()
        resume_state.write(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                **(extra or {}),
            },
            state,
        )
        (state / POSITION).write_text(json.dumps(asdict(position)))
        store.upload_dir(adapter, folder + layout.ADAPTER)
        store.upload_dir(state, folder + layout.STATE)
    info = layout.CheckpointInfo(step=position.step, epoch=position.epoch_number, kind=kind)
    store.put_bytes(folder + layout.COMPLETE, info.to_json())
    return folder


def kept_checkpoints(
    store: ObjectStore, keep_step: int, keep_epochs: int = KEEP_CHECKPOINTS
) -> list[int]:
    """The steps `prune` keeps, ascending, without deleting anything: the last `keep_epochs`
    epoch checkpoints, the latest step checkpoint while it is newer than all of them (what a
    resume needs), and `keep_step`."""
    complete = layout.complete_checkpoints(store)
    epochs = [c.step for c in complete if c.kind == "epoch"][-keep_epochs:]
    steps = [c.step for c in complete if c.kind == "step"][-1:]
    newest_epoch = max((c.step for c in complete if c.kind == "epoch"), default=-1)
    keep = set(epochs) | {s for s in steps if s > newest_epoch} | {keep_step}
    return sorted(keep & (layout.checkpoint_steps_on_store(store) | {keep_step}))


def prune(store: ObjectStore, keep_step: int, keep_epochs: int = KEEP_CHECKPOINTS) -> list[int]:
    """Delete every checkpoint but `kept_checkpoints(...)` (incomplete ones, no `COMPLETE`,
    other than `keep_step` included); returns the steps kept, ascending.

    The trainer reports a new checkpoint before it prunes: until the service knows of it, the
    one it resumes from (the latest it knows) must still be on the store."""
    keep = set(kept_checkpoints(store, keep_step, keep_epochs))
    for step in sorted(layout.checkpoint_steps_on_store(store) - keep):
        folder = layout.checkpoint_dir(step)
        store.delete(folder + layout.COMPLETE)
        store.delete_prefix(folder)
    return sorted(keep)


@dataclass
class Restored:
    adapter_dir: Path
    position: Position
    training_state: dict[str, Any]


def fetch_checkpoint(url: str, local: Path, endpoint_url: str | None = None) -> Restored:
    """Download a complete checkpoint (its folder URL) into `local`. A resume state that cannot
    be read safely is an `UnsafeCheckpoint` naming the checkpoint and the way on."""
    store = open_store(url.rstrip("/"), endpoint_url)
    if not store.exists(layout.COMPLETE):
        raise ObjectNotFound(f"{url} is not a complete checkpoint (no {layout.COMPLETE})")
    store.download_dir(layout.ADAPTER, local / "adapter")
    store.download_dir(layout.STATE, local / "state")
    position = Position(**json.loads((local / "state" / POSITION).read_text()))
    try:
        state = resume_state.read(local / "state")
    except resume_state.UnreadableState as e:
        raise UnsafeCheckpoint(
            f"cannot resume from checkpoint {url} (step {position.step}): {e}. Its adapter is "
            f"intact: start over from it with a new fine-tuning job whose model is the "
            f"checkpoint's model (ft:...:ckpt-step-{position.step})"
        ) from e
    return Restored(local / "adapter", position, state)


def fetch_adapter(url: str, local: Path, endpoint_url: str | None = None) -> Path:
    """Download a PEFT adapter folder (its URL) into `local`; missing: `ObjectNotFound`."""
    parent, name = url.rstrip("/").rsplit("/", 1)
    store, folder = open_store(parent, endpoint_url), name + "/"
    if not store.exists(folder + layout.ADAPTER_CONFIG):
        raise ObjectNotFound(f"{url} is not an adapter folder (no {layout.ADAPTER_CONFIG})")
    store.download_dir(folder, local)
    return local
