"""Where a job's outputs live in the object store: the trainer writes them, the service and
serving read them.

A job's folder is `jobs/{job_id}/` under the store root, and `JobSpec.output` is the URL of
that folder. Inside it:

    checkpoints/step-{N:08d}/adapter/    PEFT adapter folder (adapter_config.json, weights)
    checkpoints/step-{N:08d}/state/      resume state (optimiser, scheduler, RNG, data position)
    checkpoints/step-{N:08d}/COMPLETE    written last, JSON {"step", "epoch", "kind"}
    final/adapter/                       the final adapter
    metrics.csv                          one row per step (METRICS_COLUMNS; DPO_METRICS_COLUMNS)
    example_losses.json                  the training examples of highest last-epoch loss

A checkpoint without `COMPLETE` does not exist: readers skip it, and the trainer deletes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from contracts.store import ObjectNotFound, ObjectStore

CHECKPOINTS = "checkpoints/"
ADAPTER = "adapter/"
ADAPTER_CONFIG = "adapter_config.json"  # in every adapter folder, as peft writes it
STATE = "state/"
COMPLETE = "COMPLETE"
FINAL_ADAPTER = "final/adapter/"
METRICS = "metrics.csv"
SPEC = "spec.json"
EXAMPLE_LOSSES = "example_losses.json"
"""`{"examples": [{"line": 17, "loss": 4.2}, ...]}`: the training examples with the highest
loss in the last epoch (1-based lines of the training file), highest first."""
METRICS_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
)
DPO_METRICS_COLUMNS = (
    "step",
    "train_loss",
    "train_reward_margin",
    "train_reward_accuracy",
    "valid_loss",
    "valid_reward_margin",
    "valid_reward_accuracy",
)
"""The metrics CSV of a DPO job."""
REINFORCEMENT_METRICS_COLUMNS = (
    "step",
    "train_loss",
    "train_reward_mean",
    "valid_reward_mean",
)
"""A reinforcement job's CSV: these, then a `train_reward/<name>` column per sub-grader of a
`multi` grader, then a `valid_reward/<name>` column per sub-grader."""

_STEP_DIR = re.compile(r"(?:^|/)checkpoints/step-(\d{8})/")


def job_prefix(job_id: str) -> str:
    """The job's folder, relative to the store root."""
    return f"jobs/{job_id}/"


def is_job_key(job_id: str, key: str) -> bool:
    """Whether `key` (as a trainer reports it, relative to the store root) lies inside the
    job's own folder: under `jobs/{job_id}/`, no `.`, `..` or empty part, nothing else."""
    prefix = job_prefix(job_id)
    if not key.startswith(prefix) or len(key) == len(prefix) or "\\" in key:
        return False
    return all(part not in ("", ".", "..") for part in key[len(prefix) :].rstrip("/").split("/"))


def checkpoint_dir(step: int) -> str:
    """A checkpoint's folder, relative to the job's folder."""
    return f"{CHECKPOINTS}step-{step:08d}/"


def checkpoint_prefix(job_id: str, step: int) -> str:
    """A checkpoint's folder, relative to the store root (as progress messages name it)."""
    return job_prefix(job_id) + checkpoint_dir(step)


def final_adapter_prefix(job_id: str) -> str:
    return job_prefix(job_id) + FINAL_ADAPTER


def metrics_key(job_id: str) -> str:
    return job_prefix(job_id) + METRICS


def spec_key(job_id: str) -> str:
    return job_prefix(job_id) + SPEC


def example_losses_key(job_id: str) -> str:
    return job_prefix(job_id) + EXAMPLE_LOSSES


def step_of(key: str) -> int | None:
    """The step of the checkpoint a key belongs to, or `None`."""
    match = _STEP_DIR.search(key)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class CheckpointInfo:
    """What a `COMPLETE` marker records."""

    step: int
    epoch: int
    kind: Literal["epoch", "step"]

    def to_json(self) -> bytes:
        return json.dumps({"step": self.step, "epoch": self.epoch, "kind": self.kind}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CheckpointInfo:
        raw = json.loads(data)
        return cls(step=int(raw["step"]), epoch=int(raw["epoch"]), kind=raw["kind"])


def complete_checkpoints(store: ObjectStore, job_folder: str = "") -> list[CheckpointInfo]:
    """The complete checkpoints under a job's folder (`""` when the store is rooted there)."""
    found = []
    for key in store.list(job_folder + CHECKPOINTS):
        step = step_of(key)
        if step is not None and key == job_folder + checkpoint_dir(step) + COMPLETE:
            try:
                found.append(CheckpointInfo.from_json(store.get_bytes(key)))
            except (ObjectNotFound, ValueError, KeyError):
                continue
    return sorted(found, key=lambda c: c.step)


def checkpoint_steps_on_store(store: ObjectStore, job_folder: str = "") -> set[int]:
    """Every step that has any object under `checkpoints/`, complete or not."""
    steps = {step_of(key) for key in store.list(job_folder + CHECKPOINTS)}
    return {s for s in steps if s is not None}
