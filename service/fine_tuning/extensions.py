"""Whetstone's extensions to the create request (top-level, what the `openai` package sends
with `extra_body`): `lora` (`LoraOptions`: `r`, `alpha`, `dropout`, `target_modules`, each
optional) and `learning_rate` (the peak rate itself, instead of a multiplier of the trainer's
base rate; `hyperparameters.with_learning_rate`). Their limits and defaults are the JobSpec's
(`contracts.spec`), checked with the same 400s as the hyperparameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from contracts import spec as trainer_spec
from contracts.spec import LoraConfig, SupervisedHyperparameters
from service.fine_tuning.hyperparameters import number_check, spec_limits

_LORA = LoraConfig.model_fields
_LEARNING_RATE = spec_limits(SupervisedHyperparameters.model_fields["learning_rate"])
_LORA_R = spec_limits(_LORA["r"])
_LORA_ALPHA = spec_limits(_LORA["alpha"])
_LORA_DROPOUT = spec_limits(_LORA["dropout"])
LearningRate = Annotated[
    Annotated[float, _LEARNING_RATE] | None,
    BeforeValidator(number_check(_LEARNING_RATE, integer=False, auto=False)),
]
LoraRank = Annotated[
    Annotated[int, _LORA_R] | None,
    BeforeValidator(number_check(_LORA_R, integer=True, auto=False)),
]
LoraAlpha = Annotated[
    Annotated[int, _LORA_ALPHA] | None,
    BeforeValidator(number_check(_LORA_ALPHA, integer=True, auto=False)),
]
LoraDropout = Annotated[
    Annotated[float, _LORA_DROPOUT] | None,
    BeforeValidator(number_check(_LORA_DROPOUT, integer=False, auto=False)),
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


class LoraOptions(BaseModel):
    """`lora` of a create request: each setting optional (`null` or left out: the default)."""

    model_config = ConfigDict(extra="forbid")

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
