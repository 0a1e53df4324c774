"""Methods and hyperparameters: what a job request may ask for, and the values it trains with.

A request gives `"auto"` or a number for each hyperparameter; every range of OpenAI's spec is
checked here, and a bad value answers 400 with `param` naming the field (e.g.
`method.supervised.hyperparameters.n_epochs`). The scheduler later turns `"auto"` into numbers
(`service.scheduler.hyperparameters`), once it knows how many examples the file holds; the job
then reports the resolved values (`with_resolved`), as OpenAI's jobs do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_serializer
from pydantic_core import PydanticCustomError

from service.errors import InvalidRequest
from trainer.spec import DpoHyperparameters as SpecDpo

AUTO: Literal["auto"] = "auto"
Auto = Literal["auto"]
METHOD_FORMAT = {"supervised": "chat", "dpo": "preference"}
"""Which dataset line format (`clients.formats`) each method trains on."""


def _number_check(
    low: float, high: float, *, integer: bool, exclusive_low: bool = False
) -> Callable[[Any], Any]:
    kind = "an integer" if integer else "a number"
    low_word = "greater than" if exclusive_low else "from"
    rule = (
        f"must be 'auto' or {kind} {low_word} {low:g} {'up ' if exclusive_low else ''}to {high:g}"
    )

    def check(value: Any) -> Any:
        if value is None or value == AUTO:
            return AUTO
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise PydanticCustomError("invalid_value", rule + ", got {got}", {"got": repr(value)})
        too_low = value <= low if exclusive_low else value < low
        if too_low or value > high or (not integer and not math.isfinite(value)):
            raise PydanticCustomError("invalid_value", rule + ", got {got}", {"got": repr(value)})
        return value

    return check


BatchSize = Annotated[
    Annotated[int, Field(ge=1, le=256)] | Auto,
    BeforeValidator(_number_check(1, 256, integer=True)),
]
NEpochs = Annotated[
    Annotated[int, Field(ge=1, le=50)] | Auto,
    BeforeValidator(_number_check(1, 50, integer=True)),
]
LearningRateMultiplier = Annotated[
    Annotated[float, Field(gt=0, le=10)] | Auto,
    BeforeValidator(_number_check(0, 10, integer=False, exclusive_low=True)),
]
Beta = Annotated[
    Annotated[float, Field(gt=0, le=2)] | Auto,
    BeforeValidator(_number_check(0, 2, integer=False, exclusive_low=True)),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisedHyperparameters(_Strict):
    """`auto` or a value for each; the job reports resolved numbers once validated."""

    batch_size: BatchSize = AUTO
    learning_rate_multiplier: LearningRateMultiplier = AUTO
    n_epochs: NEpochs = AUTO


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta = AUTO


class SupervisedMethod(_Strict):
    hyperparameters: SupervisedHyperparameters = Field(default_factory=SupervisedHyperparameters)


class DpoMethod(_Strict):
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


def _method_type(value: Any) -> Any:
    if value == "reinforcement":
        raise PydanticCustomError(
            "unsupported_method",
            "the 'reinforcement' method is not supported; use 'supervised' or 'dpo'",
        )
    return value


class FineTuneMethod(_Strict):
    """`{"type": "supervised", "supervised": {"hyperparameters": {...}}}` or the `dpo` one."""

    type: Annotated[Literal["supervised", "dpo"], BeforeValidator(_method_type)]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None

    @model_serializer(mode="wrap")
    def _without_empty_blocks(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @property
    def hyperparameters(self) -> SupervisedHyperparameters:
        block = self.supervised if self.type == "supervised" else self.dpo
        assert block is not None, "normalize_method() fills the block of the method's type"
        return block.hyperparameters


def normalize_method(
    method: FineTuneMethod | None, legacy: SupervisedHyperparameters | None
) -> FineTuneMethod:
    """One method with the block of its type filled in; the deprecated top-level
    `hyperparameters` map to `method.supervised`. Conflicting requests answer 400."""
    if method is None:
        method = FineTuneMethod(type="supervised")
    other = "dpo" if method.type == "supervised" else "supervised"
    if getattr(method, other) is not None:
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
    return method


def with_resolved(method: FineTuneMethod, values: Mapping[str, Any]) -> FineTuneMethod:
    """The method as the job reports it once validated: each `auto` replaced by the number in
    `values` (the scheduler's `auto` rules), `beta` by the JobSpec's default when not given.
    Values the user gave stay as they are. The result is checked against the same ranges."""
    given = method.hyperparameters.model_dump()
    resolved = {
        k: values[k] if v == AUTO else v for k, v in given.items() if k in values or v != AUTO
    }
    if method.type == "dpo":
        if resolved.get("beta", AUTO) == AUTO:
            resolved["beta"] = values.get("beta", SpecDpo.model_fields["beta"].default)
        dpo = DpoMethod(hyperparameters=DpoHyperparameters.model_validate(resolved))
        return FineTuneMethod(type="dpo", dpo=dpo)
    hp = SupervisedHyperparameters.model_validate(resolved)
    return FineTuneMethod(type="supervised", supervised=SupervisedMethod(hyperparameters=hp))
