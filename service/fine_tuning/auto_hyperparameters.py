"""`auto` hyperparameters resolved from the dataset size, recorded on the job before it queues.

- `n_epochs`: OpenAI's published rule. 3 epochs; when `3 n < 100` (n examples), raised to
  `min(25, 100 // n)` so a small file is seen at least ~100 times; when `3 n > 25000`,
  lowered to `max(1, 25000 // n)` so a large one is not trained for too long.
- `batch_size`: the largest power of two not above `n / 64`, between 1 and 32. A small file
  keeps batch 1, so every example is its own optimiser step: 16 examples x 6 epochs give 96
  steps rather than 24. A large file gets larger, steadier batches, still at least ~64
  steps per epoch.
- `learning_rate_multiplier` (of the trainer's base LoRA rate, `contracts.spec.BASE_LEARNING_RATE`,
  2e-4): 1, whatever the file's size. Auto is for pretrained models (Llama, Qwen, ...), as
  OpenAI's is: 2e-4 is the usual LoRA rate on a pretrained model (QLoRA's for 7B-13B), and a
  larger one makes a LoRA on a model that already speaks diverge or forget; a small file
  already gets more epochs (above), so more steps rather than a larger rate.
- A registry entry's `auto` block (`serving.launcher.AutoHyperparameters`) replaces the epoch
  and rate rules for jobs on that base model. The built-in random-weight `whetstone-tiny` sets
  25 epochs and a multiplier of 10 (2e-3): it must learn its answers from nothing, which a
  pretrained model's rate and epochs do not teach it.

- A hyperparameter without a rule here, as `beta` (DPO), takes the JobSpec's default (0.1,
  `contracts.spec.DpoHyperparameters`), filled in by
  `service.fine_tuning.hyperparameters.with_resolved`. A DPO job's epochs, batch size and
  multiplier follow the rules above, its preference pairs counted as examples.

- Reinforcement (`resolve_reinforcement`), for a file of n prompts, each sampled
  `contracts.spec.SAMPLES_PER_PROMPT` x `compute_multiplier` times a step (every sample
  generated and graded, so a step costs several times a supervised one):
  - `n_epochs`: `ceil(30 / n)` between 1 and 10: each prompt is seen about 30 times in all
    over a small file (10 prompts: 3 epochs), once over a file of 30 or more.
  - `batch_size` (prompts per step): the largest power of two not above `n / 8`, between 1
    and 8 (the advantages are normalised within each prompt's group, so one prompt a step
    already learns; more steady the reward).
  - `learning_rate_multiplier`: 0.25 (5e-5): a policy-gradient step on a model that
    already answers moves it less than a supervised one should; a registry entry's own
    multiplier replaces it (its epochs do not: they are for supervised training).
  - `compute_multiplier`: 1 (`SAMPLES_PER_PROMPT` samples per prompt).
  - `eval_interval`: `ceil(total steps / 5)`: about five validation runs in a job.
  - `eval_samples`: 1 sample per validation prompt at each run.
  - `reasoning_effort` has no `auto` (`default`: the chat template's own).

Values the user gave are kept as they are; only `"auto"` (or a missing value) is resolved.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from service.fine_tuning.hyperparameters import AUTO
from serving.launcher import AutoHyperparameters

MIN_EPOCHS_TARGET = 100
MAX_EPOCHS_TARGET = 25_000
DEFAULT_EPOCHS = 3
MAX_AUTO_EPOCHS = 25
MAX_AUTO_BATCH = 32
EXAMPLES_PER_BATCH_UNIT = 64
AUTO_LR_MULTIPLIER = 1.0


def auto_epochs(n_examples: int) -> int:
    """OpenAI's rule: 3, raised for small files, lowered for large ones."""
    n = max(1, n_examples)
    if DEFAULT_EPOCHS * n < MIN_EPOCHS_TARGET:
        return min(MAX_AUTO_EPOCHS, MIN_EPOCHS_TARGET // n)
    if DEFAULT_EPOCHS * n > MAX_EPOCHS_TARGET:
        return max(1, MAX_EPOCHS_TARGET // n)
    return DEFAULT_EPOCHS


def auto_batch_size(n_examples: int) -> int:
    """The largest power of two <= n / 64, clamped to [1, 32]."""
    ratio = n_examples / EXAMPLES_PER_BATCH_UNIT
    if ratio < 2:
        return 1
    return min(MAX_AUTO_BATCH, 1 << int(math.log2(ratio)))


def auto_learning_rate_multiplier(n_examples: int) -> float:
    """1 (the base rate, 2e-4) for every size: a pretrained model's LoRA rate."""
    return AUTO_LR_MULTIPLIER


@dataclass(frozen=True)
class Resolved:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve(
    requested: dict[str, Any],
    n_examples: int,
    model_auto: AutoHyperparameters | None = None,
) -> Resolved:
    """Numbers for every hyperparameter: the user's where given, else the base model's own
    `auto` (`model_auto`, its registry entry's), else the rules above."""
    own = model_auto or AutoHyperparameters()
    epochs = requested.get("n_epochs", AUTO)
    batch = requested.get("batch_size", AUTO)
    lr = requested.get("learning_rate_multiplier", AUTO)
    if epochs in (None, AUTO):
        epochs = own.n_epochs or auto_epochs(n_examples)
    if lr in (None, AUTO):
        lr = own.learning_rate_multiplier or auto_learning_rate_multiplier(n_examples)
    return Resolved(
        n_epochs=int(epochs),
        batch_size=auto_batch_size(n_examples) if batch in (None, AUTO) else int(batch),
        learning_rate_multiplier=float(lr),
    )


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_examples / batch_size))


RL_VISITS_TARGET = 30
RL_MAX_AUTO_EPOCHS = 10
RL_MAX_AUTO_BATCH = 8
RL_PROMPTS_PER_BATCH_UNIT = 8
RL_AUTO_LR_MULTIPLIER = 0.25
RL_EVAL_RUNS = 5


def auto_reinforcement_epochs(n_prompts: int) -> int:
    return min(RL_MAX_AUTO_EPOCHS, max(1, math.ceil(RL_VISITS_TARGET / max(1, n_prompts))))


def auto_reinforcement_batch_size(n_prompts: int) -> int:
    ratio = n_prompts / RL_PROMPTS_PER_BATCH_UNIT
    if ratio < 2:
        return 1
    return min(RL_MAX_AUTO_BATCH, 1 << int(math.log2(ratio)))


def resolve_reinforcement(
    requested: dict[str, Any], n_prompts: int, model_auto: AutoHyperparameters | None = None
) -> dict[str, Any]:
    """Numbers for every hyperparameter of a reinforcement job: the user's where given, else
    the reinforcement rules above (the base model's own `auto` multiplier, if it has one)."""
    own = model_auto or AutoHyperparameters()
    given = {k: v for k, v in requested.items() if v not in (None, AUTO)}
    epochs = int(given.get("n_epochs") or auto_reinforcement_epochs(n_prompts))
    batch = int(given.get("batch_size") or auto_reinforcement_batch_size(n_prompts))
    lr = given.get("learning_rate_multiplier") or own.learning_rate_multiplier
    interval = given.get("eval_interval") or max(
        1, math.ceil(steps_per_epoch(n_prompts, batch) * epochs / RL_EVAL_RUNS)
    )
    return {
        "n_epochs": epochs,
        "batch_size": batch,
        "learning_rate_multiplier": float(lr or RL_AUTO_LR_MULTIPLIER),
        "compute_multiplier": float(given.get("compute_multiplier") or 1.0),
        "eval_interval": int(interval),
        "eval_samples": int(given.get("eval_samples") or 1),
    }
