"""What one training attempt holds while it trains (`Run`) and what it ends with (`Result`).

`trainer.loop` builds the `Run` and moves it forward step by step; each method's module
(`trainer.supervised`, `trainer.dpo`, `trainer.reinforce`) reads it for its own steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from contracts.messages import StepMetrics
from contracts.spec import JobSpec
from contracts.store import ObjectStore
from trainer.checkpoints import Position
from trainer.dpo import Preferences
from trainer.progress import Progress
from trainer.reinforce import Reinforcement

Status = Literal["succeeded", "cancelled", "paused"]


@dataclass
class Result:
    status: Status
    step: int
    total_steps: int
    trained_tokens: int
    seconds: float
    tokens_per_second: float
    peak_memory_mb: float
    train_loss: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    adapter_key: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """Everything one attempt holds while it trains."""

    spec: JobSpec
    progress: Progress
    store: ObjectStore
    device: torch.device
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train: list[Any]  # EncodedExample; EncodedPair for DPO
    valid: list[Any]
    pad_id: int
    position: Position
    total_steps: int
    micro_batch_tokens: int
    train_lines: list[int] = field(default_factory=list)  # each training example's line
    last: StepMetrics = field(default_factory=StepMetrics)  # of the latest step
    learning_rate: float = 0.0  # of the latest step
    prefs: Preferences | None = None  # DPO only: `trainer.dpo.Preferences`
    rl: Reinforcement | None = None  # reinforcement only
