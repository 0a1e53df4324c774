"""Fine-tuning: the create request and the job, event and checkpoint objects, as OpenAI's
spec has them (`FineTuningJob`, `FineTuningJobEvent`, `FineTuningJobCheckpoint`).

Whetstone's extension fields, top-level in the request and in the job: `lora` (LoRA rank,
alpha, dropout, target modules), `learning_rate` (`service.fine_tuning.extensions`) and
`keep_checkpoints` (how many epoch checkpoints stay, `contracts.spec.KEEP_CHECKPOINTS`).

Fields OpenAI's schema types without null are left out when there is nothing to say
(`exclude_none` on those models), never sent as null."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from contracts.names import SUFFIX_PATTERN
from contracts.spec import KEEP_CHECKPOINTS, MAX_KEEP_CHECKPOINTS
from service.db.tables import FineTuningJob as JobRow
from service.db.tables import FineTuningJobCheckpoint as CheckpointRow
from service.db.tables import FineTuningJobEvent as EventRow
from service.fine_tuning.extensions import LearningRate, LoraOptions, LoraSettings
from service.fine_tuning.hyperparameters import (
    Auto,
    FineTuneMethod,
    FineTuneSupervisedHyperparameters,
    peak_learning_rate,
)
from service.schemas.common import ListPage, omitted_if_none

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_SEED = 2_147_483_647


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise PydanticCustomError(
            "invalid_value", "at most 16 pairs are allowed, got {n}", {"n": len(value)}
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise PydanticCustomError(
                "invalid_value", "keys are at most 64 characters, got {n}", {"n": len(key)}
            )
        if len(item) > MAX_METADATA_VALUE:
            raise PydanticCustomError(
                "invalid_value", "values are at most 512 characters, got {n}", {"n": len(item)}
            )
    return value


Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]


class WandbIntegration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=128)
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None


class FineTuningIntegration(BaseModel):
    """Stored and reported with the job; its trainer logs metrics and config to this W&B run
    (the server's W&B API key, never the job's)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["wandb"]
    wandb: WandbIntegration


class CreateFineTuningJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=255)
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(default=None, max_length=64)
    hyperparameters: FineTuneSupervisedHyperparameters | None = Field(
        default=None,
        description="Deprecated: use `method`.",
        json_schema_extra={"deprecated": True},
    )
    method: FineTuneMethod | None = None
    suffix: str | None = Field(default=None, max_length=64, pattern=SUFFIX_PATTERN)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    metadata: Metadata = None
    integrations: list[FineTuningIntegration] | None = Field(default=None, max_length=5)
    # Whetstone extensions (the `openai` package sends them with `extra_body`).
    lora: LoraOptions | None = Field(
        default=None,
        description="Whetstone extension: the LoRA adapter's settings; each one left out takes "
        "its default. Not allowed when `model` is a fine-tuned model (continued training keeps "
        "that model's settings).",
    )
    learning_rate: LearningRate = Field(
        default=None,
        description="Whetstone extension: the peak learning rate itself (after warmup, before "
        "the linear decay), instead of `learning_rate_multiplier` x the trainer's base rate "
        "2e-4; the job then reports the multiplier this means. Not combined with a multiplier.",
    )
    keep_checkpoints: int | None = Field(
        default=None,
        ge=1,
        le=MAX_KEEP_CHECKPOINTS,
        description="Whetstone extension: how many of the last epochs keep their checkpoint "
        f"(and its `:ckpt-step-N` model); default {KEEP_CHECKPOINTS}, as OpenAI. Older "
        "checkpoints are deleted as training goes and are no longer listed.",
    )


class JobError(BaseModel):
    code: str
    message: str
    param: str | None


class JobHyperparameters(BaseModel):
    """The top-level `hyperparameters` of a job: the method's, without `beta`."""

    batch_size: int | Auto | None
    learning_rate_multiplier: float | Auto
    n_epochs: int | Auto


class FineTuningJob(BaseModel):
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    id: str
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: JobHyperparameters
    model: str
    organization_id: str
    result_files: list[str]
    status: Literal[
        "validating_files",
        "queued",
        "running",
        "pausing",
        "paused",
        "succeeded",
        "failed",
        "cancelled",
    ]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    integrations: list[FineTuningIntegration] | None
    seed: int
    estimated_finish: int | None
    method: FineTuneMethod
    metadata: dict[str, str] | None
    lora: LoraSettings = Field(description="Whetstone extension: the LoRA settings it trains with.")
    learning_rate: float | None = Field(
        description="Whetstone extension: the peak learning rate, the request's `learning_rate` "
        "or 2e-4 x `learning_rate_multiplier`; null while the multiplier is `auto`."
    )
    keep_checkpoints: int = Field(
        description="Whetstone extension: how many of the last epochs keep their checkpoint."
    )

    @classmethod
    def of(cls, row: JobRow) -> FineTuningJob:
        method = FineTuneMethod.model_validate(row.method)
        hp = method.hyperparameters
        error = None
        if row.error_code is not None:
            error = JobError(
                code=row.error_code, message=row.error_message or "", param=row.error_param
            )
        return cls(
            id=row.id,
            created_at=row.created_at,
            error=error,
            fine_tuned_model=row.fine_tuned_model,
            finished_at=row.finished_at,
            hyperparameters=JobHyperparameters(
                batch_size=hp.batch_size,
                learning_rate_multiplier=hp.learning_rate_multiplier,
                n_epochs=hp.n_epochs,
            ),
            model=row.model,
            organization_id=row.project_id,
            result_files=list(row.result_files or []),
            status=row.status,
            trained_tokens=row.trained_tokens,
            training_file=row.training_file,
            validation_file=row.validation_file,
            integrations=[FineTuningIntegration.model_validate(i) for i in row.integrations]
            if row.integrations is not None
            else None,
            seed=row.seed,
            estimated_finish=row.estimated_finish,
            method=method,
            metadata=row.job_metadata,
            lora=LoraSettings.of(row.lora),
            learning_rate=peak_learning_rate(row.learning_rate, hp.learning_rate_multiplier),
            keep_checkpoints=row.keep_checkpoints or KEEP_CHECKPOINTS,
        )


class ListPaginatedFineTuningJobsResponse(ListPage[FineTuningJob]):
    @classmethod
    def of(cls, rows: list[JobRow], has_more: bool) -> ListPaginatedFineTuningJobsResponse:
        return cls(data=[FineTuningJob.of(r) for r in rows], has_more=has_more)


class FineTuningJobEvent(BaseModel):
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any]

    @classmethod
    def of(cls, row: EventRow) -> FineTuningJobEvent:
        return cls(
            id=row.id,
            created_at=row.created_at,
            level=row.level,
            message=row.message,
            type=row.type,
            data=row.data or {},
        )


class ListFineTuningJobEventsResponse(ListPage[FineTuningJobEvent]):
    @classmethod
    def of(cls, rows: list[EventRow], has_more: bool) -> ListFineTuningJobEventsResponse:
        return cls(data=[FineTuningJobEvent.of(r) for r in rows], has_more=has_more)


class CheckpointMetrics(BaseModel):
    """Only the metrics measured at the step (`StepMetrics`' fields and the step): OpenAI's
    schema has no null for them. OpenAI's `metrics` object is open: a reinforcement job's
    checkpoints add the reward means and `train_reward/<name>`, `valid_reward/<name>` per
    sub-grader (the extra keys)."""

    model_config = ConfigDict(extra="allow")

    step: float | None = omitted_if_none()
    train_loss: float | None = omitted_if_none()
    train_mean_token_accuracy: float | None = omitted_if_none()
    valid_loss: float | None = omitted_if_none()
    valid_mean_token_accuracy: float | None = omitted_if_none()
    full_valid_loss: float | None = omitted_if_none()
    full_valid_mean_token_accuracy: float | None = omitted_if_none()
    # DPO's (a Whetstone extension: OpenAI's docs name none)
    train_reward_margin: float | None = omitted_if_none()
    train_reward_accuracy: float | None = omitted_if_none()
    valid_reward_margin: float | None = omitted_if_none()
    valid_reward_accuracy: float | None = omitted_if_none()
    # Reinforcement's (OpenAI's RFT dashboard shows them; its schema names none)
    train_reward_mean: float | None = omitted_if_none()
    valid_reward_mean: float | None = omitted_if_none()


class FineTuningJobCheckpoint(BaseModel):
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: CheckpointMetrics

    @classmethod
    def of(cls, row: CheckpointRow) -> FineTuningJobCheckpoint:
        return cls(
            id=row.id,
            created_at=row.created_at,
            fine_tuned_model_checkpoint=row.fine_tuned_model_checkpoint,
            fine_tuning_job_id=row.job_id,
            step_number=row.step_number,
            metrics=CheckpointMetrics.model_validate(row.metrics),
        )


class ListFineTuningJobCheckpointsResponse(ListPage[FineTuningJobCheckpoint]):
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(cls, rows: list[CheckpointRow], has_more: bool) -> ListFineTuningJobCheckpointsResponse:
        data = [FineTuningJobCheckpoint.of(r) for r in rows]
        return cls(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
