"""The progress channel (docs/architecture.md, "Progress channel"): trainer -> service.

The trainer sends one of `Message` (JSON, discriminated by `type`) per event of an attempt;
the service answers each with a `Reply`. `parse_message` reads one from JSON. Every field the
trainer always sends is required; unknown fields are ignored, and where the service always had
a fallback (a log's level, a failed message's code) the field has it as its default. The
trainer's exit codes are part of the same contract.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Action = Literal["continue", "cancel", "pause"]
"""What the trainer does next: go on, stop without a checkpoint, or checkpoint and stop."""
ACTIONS: Final[tuple[Action, ...]] = ("continue", "cancel", "pause")

ATTEMPT_TOKEN_ENV: Final = "WHETSTONE_ATTEMPT_TOKEN"
"""The environment variable that carries the attempt's bearer token to the trainer (never its
command line, which every local user can read in `/proc/PID/cmdline`)."""

EXIT_OK: Final = 0
"""Done: finished, cancelled or paused as asked, or stopped by SIGTERM after a checkpoint."""
EXIT_BAD_INPUT: Final = 2
"""Bad spec, bad data or an unsupported base model: a `Failed` was sent; never retried.
Any other exit code is a crash, retried from the last checkpoint."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepMetrics(_Frozen):
    """The numbers of one step (OpenAI's metrics event and checkpoint fields); `None`: not
    measured at this step."""

    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    # DPO only (absent from a supervised job's events): the mean reward margin
    # `beta x (policy - reference log-ratio)` of preferred over non-preferred outputs, and
    # the share of pairs whose margin is positive.
    train_reward_margin: float | None = None
    train_reward_accuracy: float | None = None
    valid_reward_margin: float | None = None
    valid_reward_accuracy: float | None = None
    # Reinforcement only: the mean grader reward of the step's samples, and of the validation
    # samples at an `eval_interval` step; per grader of a `multi` grader (its `sub_rewards`,
    # keyed by the sub-grader's name) as `train_reward/<name>` and `valid_reward/<name>`.
    train_reward_mean: float | None = None
    valid_reward_mean: float | None = None
    sub_rewards: dict[str, float] | None = None

    def metric_values(self) -> dict[str, float | None]:
        """Just the metric fields, also on a subclass (a `Metrics` message); the DPO and
        reinforcement fields only where measured, sub-rewards flattened to
        `train_reward/<name>` (and `valid_reward/<name>`)."""
        values = {
            name: getattr(self, name)
            for name in StepMetrics.model_fields
            if name != "sub_rewards"
            and (name not in OPTIONAL_METRICS or getattr(self, name) is not None)
        }
        values.update(self.sub_rewards or {})
        return values


DPO_METRICS: Final = frozenset(
    {"train_reward_margin", "train_reward_accuracy", "valid_reward_margin", "valid_reward_accuracy"}
)
REINFORCEMENT_METRICS: Final = frozenset({"train_reward_mean", "valid_reward_mean"})
OPTIONAL_METRICS: Final = DPO_METRICS | REINFORCEMENT_METRICS


class Started(_Frozen):
    """The attempt has its data and model and is about to train."""

    type: Literal["started"] = "started"
    total_steps: int
    attempt: int
    resumed_from_step: int | None = None


class Metrics(StepMetrics):
    """One step's numbers (every `metrics_every_steps`, and whenever validation ran)."""

    type: Literal["metrics"] = "metrics"
    step: int
    total_steps: int
    tokens_per_second: float | None = None
    peak_memory_mb: float | None = None
    learning_rate: float | None = None
    """The rate this step's optimiser update used (after warmup and decay)."""

    def event_data(self) -> dict[str, float | int | None]:
        """A metrics event's `data`: every number of the message (OpenAI's fields first);
        the DPO and reinforcement fields only where measured, sub-rewards flattened."""
        unmeasured = {name for name in OPTIONAL_METRICS if getattr(self, name) is None}
        data = self.model_dump(exclude={"type", "sub_rewards", *unmeasured})
        data.update(self.sub_rewards or {})
        return data


class Checkpoint(_Frozen):
    """A complete checkpoint in the store: `key` its folder from the store root, `url` the
    folder's full URL (what `resume_from` takes); `epoch` counts from 1. `kept_steps`: the
    steps of every checkpoint left on the store once this one is written and retention has
    run (this one included); any other checkpoint of the job is gone. `None`: not said."""

    type: Literal["checkpoint"] = "checkpoint"
    step: int
    epoch: int
    kind: Literal["epoch", "step"]
    key: str
    url: str
    metrics: StepMetrics = StepMetrics()
    kept_steps: tuple[int, ...] | None = None


class Heartbeat(_Frozen):
    """The attempt is alive (every 30 s, from before the model loads to the final upload)."""

    type: Literal["heartbeat"] = "heartbeat"
    step: int


class Log(_Frozen):
    """A line for the job's events; `level` is `info`, `warn` (`warning`) or `error`."""

    type: Literal["log"] = "log"
    level: str = "info"
    message: str = ""


class Finished(_Frozen):
    """The final adapter and the metrics CSV are in the store."""

    type: Literal["finished"] = "finished"
    trained_tokens: int = 0
    adapter_key: str
    metrics_key: str
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class Failed(_Frozen):
    """The attempt cannot succeed (bad spec, bad data, unsupported base model): OpenAI's
    error fields; a missing code or message is `training_failed` / a generic one."""

    type: Literal["failed"] = "failed"
    code: str | None = None
    message: str | None = None
    param: str | None = None


Message = Annotated[
    Started | Metrics | Checkpoint | Heartbeat | Log | Finished | Failed,
    Field(discriminator="type"),
]
_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)


class Reply(_Frozen):
    """The service's answer to every message."""

    action: Action


def parse_message(data: str | bytes) -> Message:
    """One message from its JSON; pydantic's `ValidationError` when it is not one."""
    return _MESSAGE.validate_json(data)
