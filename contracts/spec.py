"""The JobSpec: everything one training attempt needs, validated before any model loads.

Torch-free: the scheduler builds and stores it; `python -m trainer run --spec URL` reads it.
Every default lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.graders.sandbox import Limits
from contracts.graders.schema import Grader

ALL_LINEAR: Final = "all-linear"
# The optimiser's settings: lr = BASE_LEARNING_RATE * learning_rate_multiplier (or the
# job's own `learning_rate`), linear warmup over WARMUP_FRACTION of the steps (at least one),
# then linear decay to 0; AdamW's weight decay the job's `weight_decay` (WEIGHT_DECAY unless
# it asks for another).
BASE_LEARNING_RATE = 2e-4
WARMUP_FRACTION = 0.05
MAX_GRAD_NORM = 1.0
WEIGHT_DECAY = 0.0
# Limits a job may ask for; the service checks requests against these same numbers.
MAX_LEARNING_RATE_MULTIPLIER = 10.0
MAX_LEARNING_RATE = BASE_LEARNING_RATE * MAX_LEARNING_RATE_MULTIPLIER  # 2e-3
LORA_MAX_R = 256
LORA_MAX_ALPHA = 1024
LORA_MAX_TARGET_MODULES = 64
LORA_MAX_MODULE_NAME = 128
LORA_TARGET_MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
"""A module name (`q_proj`) or a dotted path ending in one (`self_attn.q_proj`), as peft matches."""
# Epoch checkpoints kept on the store (and listed as models): OpenAI keeps the last 3 epochs;
# a job may ask for more (the `keep_checkpoints` extension field), up to one per epoch.
KEEP_CHECKPOINTS = 3
MAX_KEEP_CHECKPOINTS = 50
# Tokens per forward/backward pass (a step's examples are split into micro-batches of at most
# this many tokens, padding included); lower it for a large model on a small GPU.
MICRO_BATCH_TOKENS = 8192


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseModelRef(_Strict):
    name: str = Field(description="Registered base model name, e.g. `whetstone-tiny`.")
    path: str = Field(
        description="Local folder of the Hugging Face model (config, weights, tokenizer)."
    )
    max_seq_len: int = Field(default=1024, ge=16, le=131072)


@dataclass(frozen=True)
class Requestable:
    """Marks a hyperparameter that a create request may set
    (`method.<type>.hyperparameters.<name>`): the service's request models are derived from
    the fields so marked (`service.fine_tuning.hyperparameters`), `"auto"` allowed for each
    number, with the field's bounds; an `auto` that no rule resolves takes the field's default."""


REQUESTABLE: Final = Requestable()

# The bounds a registry entry's own `auto` values also keep (`serving.launcher`).
Epochs = Annotated[int, Field(ge=1, le=50)]
LearningRateMultiplier = Annotated[float, Field(gt=0, le=MAX_LEARNING_RATE_MULTIPLIER)]


class SupervisedHyperparameters(_Strict):
    batch_size: Annotated[int, REQUESTABLE] = Field(default=4, ge=1, le=256)
    learning_rate_multiplier: Annotated[LearningRateMultiplier, REQUESTABLE] = 1.0
    n_epochs: Annotated[Epochs, REQUESTABLE] = 3
    weight_decay: Annotated[float, REQUESTABLE] = Field(
        default=WEIGHT_DECAY,
        ge=0,
        le=1,
        description="Whetstone extension: AdamW's (decoupled) weight decay; `auto`: "
        f"{WEIGHT_DECAY:g}.",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=MAX_LEARNING_RATE,
        description="The peak learning rate itself; unset: BASE_LEARNING_RATE x the multiplier.",
    )

    @property
    def peak_learning_rate(self) -> float:
        """What the optimiser reaches after warmup: `learning_rate`, else base x multiplier."""
        if self.learning_rate is not None:
            return self.learning_rate
        return BASE_LEARNING_RATE * self.learning_rate_multiplier


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Annotated[float, REQUESTABLE] = Field(
        default=0.1,
        gt=0,
        le=2,
        description="How far the policy may move from the reference: the DPO loss is "
        "-log sigmoid(beta x (policy - reference log-ratio of preferred over non-preferred)).",
    )


# Reinforcement: each prompt of a step is sampled SAMPLES_PER_PROMPT x compute_multiplier
# times (at least 2: the advantages are normalised within a prompt's group of samples).
SAMPLES_PER_PROMPT = 4
MAX_COMPUTE_MULTIPLIER = 10.0


class ReinforcementHyperparameters(SupervisedHyperparameters):
    """OpenAI's `FineTuneReinforcementHyperparameters`, resolved, plus the sampling settings
    (Whetstone's: OpenAI does not expose them)."""

    compute_multiplier: Annotated[float, REQUESTABLE] = Field(
        default=1.0, gt=0, le=MAX_COMPUTE_MULTIPLIER
    )
    eval_interval: Annotated[int, REQUESTABLE] = Field(
        default=10, ge=1, description="Steps between validation runs."
    )
    eval_samples: Annotated[int, REQUESTABLE] = Field(
        default=1, ge=1, le=64, description="Samples drawn per validation prompt at a run."
    )
    reasoning_effort: Annotated[Literal["default", "low", "medium", "high"], REQUESTABLE] = (
        "default"
    )
    kl_beta: float = Field(
        default=0.04,
        ge=0,
        le=1,
        description="Weight of the KL penalty to the reference model; 0: no reference.",
    )
    temperature: float = Field(default=1.0, gt=0, le=2)
    max_completion_tokens: int = Field(default=256, ge=1, le=8192)

    @property
    def samples_per_prompt(self) -> int:
        return max(2, round(SAMPLES_PER_PROMPT * self.compute_multiplier))


MethodType = Literal["supervised", "dpo", "reinforcement"]
HYPERPARAMETERS: Final[dict[MethodType, type[SupervisedHyperparameters]]] = {
    "supervised": SupervisedHyperparameters,
    "dpo": DpoHyperparameters,
    "reinforcement": ReinforcementHyperparameters,
}
"""Each method's hyperparameters, in its block of the same name (`Method.dpo`, ...)."""


class Method(_Strict):
    type: MethodType = "supervised"
    supervised: SupervisedHyperparameters | None = None
    dpo: DpoHyperparameters | None = None
    reinforcement: ReinforcementHyperparameters | None = None
    grader: Grader | None = Field(
        default=None, description="The reinforcement job's grader (`contracts.graders.schema`)."
    )

    @model_validator(mode="after")
    def _one_block(self) -> Method:
        others = set(HYPERPARAMETERS) - {self.type}
        for other in sorted(others):
            if getattr(self, other) is not None:
                raise ValueError(f"method '{self.type}' takes its hyperparameters in '{self.type}'")
        if (self.grader is None) != (self.type != "reinforcement"):
            raise ValueError("a reinforcement method takes a grader, and only it does")
        if getattr(self, self.type) is None:
            object.__setattr__(self, self.type, HYPERPARAMETERS[self.type]())
        return self


TargetModule = Annotated[
    str, StringConstraints(max_length=LORA_MAX_MODULE_NAME, pattern=LORA_TARGET_MODULE_PATTERN)
]


class LoraConfig(_Strict):
    r: int = Field(default=16, ge=1, le=LORA_MAX_R)
    alpha: int = Field(default=32, ge=1, le=LORA_MAX_ALPHA)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: (
        Annotated[list[TargetModule], Field(min_length=1, max_length=LORA_MAX_TARGET_MODULES)]
        | Literal["all-linear"]
    ) = ALL_LINEAR


class WandbRun(_Strict):
    """Where the trainer logs the job to Weights & Biases (the job's `wandb` integration):
    run id the job id, name `name` or the job id, tags `openai/finetune`,
    `openai/{base model}`, `openai/{job id}` then the job's own. The API key is the
    trainer's environment's (`WANDB_API_KEY`), never the spec's."""

    project: str = Field(min_length=1, max_length=128)
    name: str | None = None
    entity: str | None = None
    tags: list[str] = Field(default_factory=list)


class JobSpec(_Strict):
    job_id: str
    base_model: BaseModelRef
    training_file: str = Field(description="Store URL of the training JSONL.")
    validation_file: str | None = None
    method: Method = Method()
    lora: LoraConfig = LoraConfig()
    quantization: Literal["nf4", "none"] = "nf4"
    seed: int = 42
    output: str = Field(description="Store URL prefix for checkpoints, final adapter and metrics.")
    checkpoint_every_steps: int = Field(default=50, ge=1)
    keep_checkpoints: int = Field(
        default=KEEP_CHECKPOINTS,
        ge=1,
        le=MAX_KEEP_CHECKPOINTS,
        description="How many of the latest epoch checkpoints stay on the store; older ones "
        "are deleted (the latest step checkpoint stays too while it is newer than them).",
    )
    eval_every_steps: int = Field(default=10, ge=1)
    metrics_every_steps: int = Field(default=1, ge=1)
    micro_batch_tokens: int = Field(
        default=MICRO_BATCH_TOKENS,
        ge=1,
        description="Most tokens per forward/backward pass (padding included); a step's "
        "examples are split into micro-batches of at most this many.",
    )
    resume_from: str | None = Field(default=None, description="Checkpoint URL to resume from.")
    init_adapter: str | None = Field(
        default=None,
        description="Store URL of a PEFT adapter folder to start from: continued training of a "
        "fine-tuned model (its LoRA settings then stand). A `resume_from` checkpoint wins.",
    )
    attempt: int = Field(default=1, ge=1)
    held_out_lines: list[int] = Field(
        default_factory=list,
        description="1-based line numbers of the training file set aside for the evaluation "
        "report (a job without a validation file): the trainer does not train on them.",
    )
    wandb: WandbRun | None = Field(
        default=None, description="Log metrics and config to this W&B run; None: no W&B."
    )

    grader_limits: Limits = Field(
        default_factory=Limits,
        description="The Python grader's sandbox limits (a reinforcement job's), the "
        "operator's `WHETSTONE_GRADER_PYTHON_*` settings when the job was claimed.",
    )

    @property
    def hyperparameters(self) -> SupervisedHyperparameters:
        """The method's block: `method.supervised`, `method.dpo` (which adds `beta`) or
        `method.reinforcement`."""
        block = getattr(self.method, self.method.type)
        assert isinstance(block, SupervisedHyperparameters)
        return block
