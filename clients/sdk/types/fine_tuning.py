"""Fine-tuning job, event, checkpoint and metrics objects (`/v1/fine_tuning/jobs`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._base import APIObject

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

Auto = Literal["auto"]


class JobError(APIObject):
    code: str
    message: str
    param: str | None = None


class Hyperparameters(APIObject):
    batch_size: int | Auto | None = None
    learning_rate_multiplier: float | Auto | None = None
    n_epochs: int | Auto | None = None
    beta: float | Auto | None = None
    # reinforcement jobs
    compute_multiplier: float | Auto | None = None
    eval_interval: int | Auto | None = None
    eval_samples: int | Auto | None = None
    reasoning_effort: str | None = None


class SupervisedMethod(APIObject):
    hyperparameters: Hyperparameters | None = None


class DpoMethod(APIObject):
    hyperparameters: Hyperparameters | None = None


class ReinforcementMethod(APIObject):
    """The grader as the job was given it (OpenAI's grader objects, as JSON)."""

    grader: dict[str, Any] | None = None
    hyperparameters: Hyperparameters | None = None


class Method(APIObject):
    type: str
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None


class WandbIntegration(APIObject):
    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None


class Integration(APIObject):
    type: str
    wandb: WandbIntegration | None = None


class FineTuningJob(APIObject):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: Hyperparameters | None = None
    model: str
    organization_id: str | None = None
    result_files: list[str] = Field(default_factory=list)
    status: str
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    integrations: list[Integration] | None = None
    seed: int | None = None
    estimated_finish: int | None = None
    method: Method | None = None
    metadata: dict[str, str] | None = None

    @property
    def finished(self) -> bool:
        """True once the job is `succeeded`, `failed` or `cancelled`."""
        return self.status in FINAL_STATUSES


class Metrics(APIObject):
    """The `data` of a `metrics` event (or a checkpoint's `metrics`)."""

    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    # DPO jobs
    train_reward_margin: float | None = None
    train_reward_accuracy: float | None = None
    valid_reward_margin: float | None = None
    valid_reward_accuracy: float | None = None
    # reinforcement jobs (and `train_reward/<name>`, `valid_reward/<name>` per sub-grader,
    # kept as extra fields: `sub_rewards()`)
    train_reward_mean: float | None = None
    valid_reward_mean: float | None = None

    def sub_rewards(self) -> dict[str, float]:
        """A multi grader's mean reward per sub-grader: `train_reward/<name>` and
        `valid_reward/<name>` keys."""
        extra = self.model_extra or {}
        return {
            k: float(v)
            for k, v in extra.items()
            if k.startswith(("train_reward/", "valid_reward/")) and isinstance(v, int | float)
        }


class FineTuningJobEvent(APIObject):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str | None = None
    data: dict[str, Any] | None = None

    @property
    def metrics(self) -> Metrics | None:
        """The training metrics this event carries, or None for a plain message."""
        if self.type != "metrics" or not self.data:
            return None
        return Metrics.model_validate(self.data)


class FineTuningJobCheckpoint(APIObject):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: Metrics
