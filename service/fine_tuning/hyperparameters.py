"""Methods and hyperparameters: what a job request may ask for, and the values it trains with.

A request gives `"auto"` or a number for each hyperparameter; every range of OpenAI's spec is
checked here, and a bad value answers 400 with `param` naming the field (e.g.
`method.supervised.hyperparameters.n_epochs`). The scheduler later turns `"auto"` into numbers
(`auto_hyperparameters`, beside this module), once it knows how many examples the file holds;
the job then reports the resolved values (`with_resolved`), as OpenAI's jobs do.

Whetstone's extensions to the create request (top-level, what the `openai` package sends with
`extra_body`): `lora` (`LoraOptions`: `r`, `alpha`, `dropout`, `target_modules`, each optional)
and `learning_rate` (the peak rate itself, instead of a multiplier of the trainer's base rate).
Their limits and defaults are the JobSpec's (`contracts.spec`), checked here with the same 400s.

A reinforcement method (`{"type": "reinforcement", "reinforcement": {"grader": {...},
"hyperparameters": {...}}}`, OpenAI's `FineTuneReinforcementMethod`) takes a grader
(`contracts.graders.schema`, checked at create: `service.fine_tuning.create`) and OpenAI's
reinforcement hyperparameters; the job reports the grader as given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from contracts import spec as trainer_spec
from contracts.graders.schema import Grader
from contracts.spec import DpoHyperparameters as SpecDpo
from contracts.spec import LoraConfig
from contracts.spec import ReinforcementHyperparameters as SpecReinforcement
from contracts.spec import SupervisedHyperparameters as SpecSupervised
from service.errors import InvalidRequest

AUTO: Literal["auto"] = "auto"
Auto = Literal["auto"]
METHOD_FORMAT = {"supervised": "chat", "dpo": "preference", "reinforcement": "reinforcement"}
"""Which dataset line format (`contracts.formats`) each method trains on."""


def _spec_limits(model: type[BaseModel], name: str) -> annotated_types.Interval:
    """The bounds the JobSpec (`contracts.spec`) puts on `model.name`: the request's own."""
    bounds: dict[str, Any] = {}
    for constraint in model.model_fields[name].metadata:
        for bound in ("gt", "ge", "lt", "le"):
            if isinstance(constraint, getattr(annotated_types, bound.capitalize())):
                bounds[bound] = getattr(constraint, bound)
    return annotated_types.Interval(**bounds)


def _number_check(
    limits: annotated_types.Interval, *, integer: bool, auto: bool = True
) -> Callable[[Any], Any]:
    """A check of `limits` with OpenAI's 400 message ("must be 'auto' or an integer from 1
    to 50, got 0"); `auto` also takes `"auto"` (and a missing value) as `AUTO`."""
    exclusive_low, exclusive_high = limits.gt is not None, limits.lt is not None
    low = limits.gt if exclusive_low else limits.ge
    high = limits.lt if exclusive_high else limits.le
    assert isinstance(low, int | float) and isinstance(high, int | float | None), limits
    kind = "an integer" if integer else "a number"
    low_word = "greater than" if exclusive_low else "from"
    up_to = "up to " if exclusive_low else "to "
    if exclusive_high:
        up_to = "up to (not including) "
    either = "'auto' or " if auto else ""
    if high is None:  # no upper bound (`eval_interval`)
        low_word = "greater than" if exclusive_low else "of at least"
        rule = f"must be {either}{kind} {low_word} {low:g}"
        high = math.inf
    else:
        rule = f"must be {either}{kind} {low_word} {low:g} {up_to}{high:g}"

    def check(value: Any) -> Any:
        if value is None or (auto and value == AUTO):
            return AUTO if auto else None
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise PydanticCustomError("invalid_value", rule + ", got {got}", {"got": repr(value)})
        too_low = value <= low if exclusive_low else value < low
        too_high = value >= high if exclusive_high else value > high
        if too_low or too_high or (not integer and not math.isfinite(value)):
            raise PydanticCustomError("invalid_value", rule + ", got {got}", {"got": repr(value)})
        return value

    return check


# Each request type takes its bounds from the JobSpec field it becomes.
_BATCH_SIZE = _spec_limits(SpecSupervised, "batch_size")
_N_EPOCHS = _spec_limits(SpecSupervised, "n_epochs")
_MULTIPLIER = _spec_limits(SpecSupervised, "learning_rate_multiplier")
_BETA = _spec_limits(SpecDpo, "beta")
BatchSize = Annotated[
    Annotated[int, _BATCH_SIZE] | Auto,
    BeforeValidator(_number_check(_BATCH_SIZE, integer=True)),
]
NEpochs = Annotated[
    Annotated[int, _N_EPOCHS] | Auto,
    BeforeValidator(_number_check(_N_EPOCHS, integer=True)),
]
_MAX_MULTIPLIER = trainer_spec.MAX_LEARNING_RATE_MULTIPLIER
LearningRateMultiplier = Annotated[
    Annotated[float, _MULTIPLIER] | Auto,
    BeforeValidator(_number_check(_MULTIPLIER, integer=False)),
]
Beta = Annotated[
    Annotated[float, _BETA] | Auto,
    BeforeValidator(_number_check(_BETA, integer=False)),
]


_COMPUTE = _spec_limits(SpecReinforcement, "compute_multiplier")
_EVAL_INTERVAL = _spec_limits(SpecReinforcement, "eval_interval")
_EVAL_SAMPLES = _spec_limits(SpecReinforcement, "eval_samples")
ComputeMultiplier = Annotated[
    Annotated[float, _COMPUTE] | Auto,
    BeforeValidator(_number_check(_COMPUTE, integer=False)),
]
EvalInterval = Annotated[
    Annotated[int, _EVAL_INTERVAL] | Auto,
    BeforeValidator(_number_check(_EVAL_INTERVAL, integer=True)),
]
EvalSamples = Annotated[
    Annotated[int, _EVAL_SAMPLES] | Auto,
    BeforeValidator(_number_check(_EVAL_SAMPLES, integer=True)),
]
ReasoningEffort = Literal["default", "low", "medium", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisedHyperparameters(_Strict):
    """`auto` or a value for each; the job reports resolved numbers once validated."""

    batch_size: BatchSize = AUTO
    learning_rate_multiplier: LearningRateMultiplier = AUTO
    n_epochs: NEpochs = AUTO


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta = AUTO


class ReinforcementHyperparameters(SupervisedHyperparameters):
    """OpenAI's `FineTuneReinforcementHyperparameters`: `auto` or a value for each number;
    `compute_multiplier` scales the samples drawn per prompt (`contracts.spec`)."""

    compute_multiplier: ComputeMultiplier = AUTO
    eval_interval: EvalInterval = AUTO
    eval_samples: EvalSamples = AUTO
    reasoning_effort: ReasoningEffort = "default"


class SupervisedMethod(_Strict):
    hyperparameters: SupervisedHyperparameters = Field(default_factory=SupervisedHyperparameters)


class DpoMethod(_Strict):
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


class ReinforcementMethod(_Strict):
    """The grader scores each sample (`contracts.graders`); reported as given (fields the
    request left out are not filled in)."""

    grader: Grader
    hyperparameters: ReinforcementHyperparameters = Field(
        default_factory=ReinforcementHyperparameters
    )

    @model_serializer(mode="wrap")
    def _grader_as_given(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data = handler(self)
        data["grader"] = self.grader.model_dump(mode="json", exclude_unset=True)
        return data


MethodType = Literal["supervised", "dpo", "reinforcement"]


class FineTuneMethod(_Strict):
    """`{"type": "supervised", "supervised": {"hyperparameters": {...}}}`, the `dpo` one, or
    `{"type": "reinforcement", "reinforcement": {"grader": {...}, "hyperparameters": {...}}}`."""

    type: MethodType
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None

    @model_serializer(mode="wrap")
    def _without_empty_blocks(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @property
    def hyperparameters(self) -> SupervisedHyperparameters:
        block = getattr(self, self.type)
        assert block is not None, "normalize_method() fills the block of the method's type"
        hp: SupervisedHyperparameters = block.hyperparameters
        return hp

    def with_hyperparameters(self, values: Mapping[str, Any]) -> FineTuneMethod:
        """The same method (its grader too) with these hyperparameters, range-checked."""
        if self.type == "reinforcement":
            assert self.reinforcement is not None
            rl = ReinforcementMethod(
                grader=self.reinforcement.grader,
                hyperparameters=ReinforcementHyperparameters.model_validate(values),
            )
            return FineTuneMethod(type="reinforcement", reinforcement=rl)
        if self.type == "dpo":
            dpo = DpoMethod(hyperparameters=DpoHyperparameters.model_validate(values))
            return FineTuneMethod(type="dpo", dpo=dpo)
        hp = SupervisedHyperparameters.model_validate(values)
        return FineTuneMethod(type="supervised", supervised=SupervisedMethod(hyperparameters=hp))


def normalize_method(
    method: FineTuneMethod | None, legacy: SupervisedHyperparameters | None
) -> FineTuneMethod:
    """One method with the block of its type filled in; the deprecated top-level
    `hyperparameters` map to `method.supervised`. Conflicting requests answer 400."""
    if method is None:
        method = FineTuneMethod(type="supervised")
    for other in ("supervised", "dpo", "reinforcement"):
        if other != method.type and getattr(method, other) is not None:
            raise InvalidRequest(
                f"'method.{other}' was given but 'method.type' is '{method.type}'.",
                param=f"method.{other}",
                code="invalid_value",
            )
    if legacy is not None:
        explicit = method.supervised is not None and method.supervised.model_fields_set
        if method.type != "supervised" or explicit:
            raise InvalidRequest(
                "The deprecated top-level 'hyperparameters' apply to the supervised method "
                "only and cannot be combined with method hyperparameters; use "
                f"'method.{method.type}.hyperparameters'.",
                param="hyperparameters",
                code="invalid_value",
            )
        return FineTuneMethod(
            type="supervised", supervised=SupervisedMethod(hyperparameters=legacy)
        )
    if method.type == "supervised" and method.supervised is None:
        return FineTuneMethod(type="supervised", supervised=SupervisedMethod())
    if method.type == "dpo" and method.dpo is None:
        return FineTuneMethod(type="dpo", dpo=DpoMethod())
    if method.type == "reinforcement" and method.reinforcement is None:
        raise InvalidRequest(
            "Missing required parameter: 'method.reinforcement.grader': a reinforcement job "
            "needs a grader.",
            param="method.reinforcement.grader",
            code="missing_required_parameter",
        )
    return method


def with_resolved(method: FineTuneMethod, values: Mapping[str, Any]) -> FineTuneMethod:
    """The method as the job reports it once validated: each `auto` replaced by the number in
    `values` (the scheduler's `auto` rules), `beta` by the JobSpec's default when not given.
    Values the user gave stay as they are. The result is checked against the same ranges."""
    given = method.hyperparameters.model_dump()
    resolved = {
        k: values[k] if v == AUTO else v for k, v in given.items() if k in values or v != AUTO
    }
    if method.type == "dpo" and resolved.get("beta", AUTO) == AUTO:
        resolved["beta"] = values.get("beta", SpecDpo.model_fields["beta"].default)
    return method.with_hyperparameters(resolved)


# --- Extensions: per-job LoRA settings and learning rate ---------------------------------

_LORA = LoraConfig.model_fields
_LEARNING_RATE = _spec_limits(SpecSupervised, "learning_rate")
_LORA_R = _spec_limits(LoraConfig, "r")
_LORA_ALPHA = _spec_limits(LoraConfig, "alpha")
_LORA_DROPOUT = _spec_limits(LoraConfig, "dropout")
LearningRate = Annotated[
    Annotated[float, _LEARNING_RATE] | None,
    BeforeValidator(_number_check(_LEARNING_RATE, integer=False, auto=False)),
]
LoraRank = Annotated[
    Annotated[int, _LORA_R] | None,
    BeforeValidator(_number_check(_LORA_R, integer=True, auto=False)),
]
LoraAlpha = Annotated[
    Annotated[int, _LORA_ALPHA] | None,
    BeforeValidator(_number_check(_LORA_ALPHA, integer=True, auto=False)),
]
LoraDropout = Annotated[
    Annotated[float, _LORA_DROPOUT] | None,
    BeforeValidator(_number_check(_LORA_DROPOUT, integer=False, auto=False)),
]
_MODULE = re.compile(trainer_spec.LORA_TARGET_MODULE_PATTERN)


def _check_target_modules(value: Any) -> Any:
    if value is None or value == trainer_spec.ALL_LINEAR:
        return value
    limit, max_name = trainer_spec.LORA_MAX_TARGET_MODULES, trainer_spec.LORA_MAX_MODULE_NAME
    rule = f"must be 'all-linear' or a list of 1 to {limit} module names such as 'q_proj'"
    if not isinstance(value, list) or not 1 <= len(value) <= limit:
        raise PydanticCustomError("invalid_value", rule + ", got {got}", {"got": repr(value)})
    for name in value:
        if not isinstance(name, str) or len(name) > max_name or not _MODULE.match(name):
            raise PydanticCustomError(
                "invalid_value",
                "module names are letters, digits and '_', dotted paths allowed "
                "('self_attn.q_proj'), at most {max} characters; got {got}",
                {"got": repr(name), "max": max_name},
            )
    if len(set(value)) != len(value):
        raise PydanticCustomError("invalid_value", "module names must not repeat")
    return value


TargetModules = Annotated[
    Annotated[
        list[trainer_spec.TargetModule],
        Field(min_length=1, max_length=trainer_spec.LORA_MAX_TARGET_MODULES),
    ]
    | Literal["all-linear"]
    | None,
    BeforeValidator(_check_target_modules),
]


class LoraOptions(_Strict):
    """`lora` of a create request: each setting optional (`null` or left out: the default)."""

    r: LoraRank = Field(default=None, description=f"Rank; default {_LORA['r'].default}.")
    alpha: LoraAlpha = Field(
        default=None,
        description=f"Scaling numerator (alpha / r); default {_LORA['alpha'].default}.",
    )
    dropout: LoraDropout = Field(
        default=None, description=f"Dropout on the LoRA input; default {_LORA['dropout'].default}."
    )
    target_modules: TargetModules = Field(
        default=None,
        description='Module names to adapt (`["q_proj", "v_proj"]`), or `all-linear` '
        "(every linear layer but the output head; the default).",
    )

    def resolved(self) -> LoraConfig:
        """The JobSpec's settings: the given values, the JobSpec's defaults for the rest."""
        return LoraConfig(**self.model_dump(exclude_none=True))


class LoraSettings(BaseModel):
    """`lora` of a job: the settings it trains with."""

    r: int
    alpha: int
    dropout: float
    target_modules: list[str] | Literal["all-linear"]

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> LoraSettings:
        """From the job's `lora` column; `None` (a job from before the column) had the defaults."""
        return cls.model_validate(LoraConfig.model_validate(stored or {}).model_dump())


def multiplier_for(learning_rate: float) -> float:
    """The `learning_rate_multiplier` a job with its own `learning_rate` reports."""
    return min(_MAX_MULTIPLIER, float(f"{learning_rate / trainer_spec.BASE_LEARNING_RATE:.10g}"))


def peak_learning_rate(learning_rate: float | None, multiplier: float | Auto) -> float | None:
    """What a job reports as its `learning_rate`: its own, or base x multiplier once resolved."""
    if learning_rate is not None:
        return learning_rate
    if multiplier == AUTO:
        return None
    return float(f"{trainer_spec.BASE_LEARNING_RATE * multiplier:.10g}")


def with_learning_rate(method: FineTuneMethod, learning_rate: float | None) -> FineTuneMethod:
    """A request's `learning_rate` sets the multiplier the job reports (rate / base rate); a
    multiplier given as well is a conflicting request (400 naming `learning_rate`)."""
    if learning_rate is None:
        return method
    block = f"method.{method.type}.hyperparameters"
    if method.hyperparameters.learning_rate_multiplier != AUTO:
        raise InvalidRequest(
            f"'learning_rate' sets the learning rate itself and cannot be combined with "
            f"'{block}.learning_rate_multiplier'; give one of them.",
            param="learning_rate",
            code="invalid_value",
        )
    values = method.hyperparameters.model_dump()
    values["learning_rate_multiplier"] = multiplier_for(learning_rate)
    return method.with_hyperparameters(values)
