"""Methods and hyperparameters: what a job request may ask for, and the values it trains with.

A method's hyperparameters are defined once, in the JobSpec (`contracts.spec`): the fields
marked `REQUESTABLE` there are those a create request may set, and the request models here
(OpenAI's `FineTuneSupervisedHyperparameters`, `FineTuneDPOHyperparameters`,
`FineTuneReinforcementHyperparameters`) are derived from them. A request gives `"auto"` or a
number for each; every range is the JobSpec field's, checked here, and a bad value answers
400 with `param` naming the field (e.g. `method.supervised.hyperparameters.n_epochs`). The
scheduler later turns `"auto"` into numbers (`auto_hyperparameters`, beside this module), once
it knows how many examples the file holds, and an `auto` those rules leave (DPO's `beta`)
into the JobSpec's default; the job then reports the resolved values (`with_resolved`), as
OpenAI's jobs do.

Whetstone's extensions to the create request (top-level, what the `openai` package sends with
`extra_body`) are in `extensions`: `lora` and `learning_rate` (the peak rate itself, instead
of a multiplier of the trainer's base rate; the job reports the multiplier it means,
`with_learning_rate`).

A reinforcement method (`{"type": "reinforcement", "reinforcement": {"grader": {...},
"hyperparameters": {...}}}`, OpenAI's `FineTuneReinforcementMethod`) takes a grader
(`contracts.graders.schema`, checked at create: `service.fine_tuning.create`) and OpenAI's
reinforcement hyperparameters; the job reports the grader as given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_serializer
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from contracts import spec as trainer_spec
from contracts.graders.schema import Grader
from contracts.spec import HYPERPARAMETERS, MethodType, Requestable
from service.errors import InvalidRequest

AUTO: Literal["auto"] = "auto"
Auto = Literal["auto"]
METHOD_FORMAT = {"supervised": "chat", "dpo": "preference", "reinforcement": "reinforcement"}
"""Which dataset line format (`contracts.formats`) each method trains on."""


def spec_limits(field: FieldInfo) -> annotated_types.Interval:
    """The bounds the JobSpec (`contracts.spec`) puts on a field: the request's own."""
    bounds: dict[str, Any] = {}
    for constraint in field.metadata:
        for bound in ("gt", "ge", "lt", "le"):
            if isinstance(constraint, getattr(annotated_types, bound.capitalize())):
                bounds[bound] = getattr(constraint, bound)
    return annotated_types.Interval(**bounds)


def number_check(
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _requested(field: FieldInfo) -> tuple[Any, Any]:
    """A JobSpec field as a request takes it: a number is `"auto"` (the default) or a value
    within the field's bounds; any other type (`reasoning_effort`) as the JobSpec has it."""
    number = field.annotation
    if number not in (int, float):
        return number, Field(default=field.default, description=field.description)
    limits = spec_limits(field)
    kind = Annotated[
        Annotated[number, limits] | Auto,  # type: ignore[valid-type]  # int or float, at run time
        BeforeValidator(number_check(limits, integer=number is int)),
    ]
    return kind, Field(default=AUTO, description=field.description)


def _derived(method: MethodType, base: type[BaseModel] = _Strict) -> type[BaseModel]:
    """The request model of a method's hyperparameters: the fields of the JobSpec's class
    (`contracts.spec.HYPERPARAMETERS`) marked `REQUESTABLE`, except those `base` has."""
    spec = HYPERPARAMETERS[method]
    fields: dict[str, Any] = {
        name: _requested(field)
        for name, field in spec.model_fields.items()
        if name not in base.model_fields and any(isinstance(m, Requestable) for m in field.metadata)
    }
    return create_model(f"{spec.__name__}Request", __base__=base, **fields)


# The classes below are built from the JobSpec's at import: mypy sees their fields as `Any`.
class FineTuneSupervisedHyperparameters(_derived("supervised")):  # type: ignore[misc]
    """`auto` or a value for each; the job reports resolved numbers once validated."""


class FineTuneDPOHyperparameters(
    _derived("dpo", base=FineTuneSupervisedHyperparameters)  # type: ignore[misc]
):
    """The supervised hyperparameters and `beta`."""


class FineTuneReinforcementHyperparameters(
    _derived("reinforcement", base=FineTuneSupervisedHyperparameters)  # type: ignore[misc]
):
    """OpenAI's `FineTuneReinforcementHyperparameters`: `auto` or a value for each number;
    `compute_multiplier` scales the samples drawn per prompt (`contracts.spec`)."""


class SupervisedMethod(_Strict):
    hyperparameters: FineTuneSupervisedHyperparameters = Field(
        default_factory=FineTuneSupervisedHyperparameters
    )


class DpoMethod(_Strict):
    hyperparameters: FineTuneDPOHyperparameters = Field(default_factory=FineTuneDPOHyperparameters)


class ReinforcementMethod(_Strict):
    """The grader scores each sample (`contracts.graders`); reported as given (fields the
    request left out are not filled in)."""

    grader: Grader
    hyperparameters: FineTuneReinforcementHyperparameters = Field(
        default_factory=FineTuneReinforcementHyperparameters
    )

    @model_serializer(mode="wrap")
    def _grader_as_given(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data = handler(self)
        data["grader"] = self.grader.model_dump(mode="json", exclude_unset=True)
        return data


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
    def hyperparameters(self) -> FineTuneSupervisedHyperparameters:
        """The block's hyperparameters (the dpo and reinforcement ones add to supervised's)."""
        block = getattr(self, self.type)
        assert block is not None, "normalize_method() fills the block of the method's type"
        hp: FineTuneSupervisedHyperparameters = block.hyperparameters
        return hp

    def with_hyperparameters(self, values: Mapping[str, Any]) -> FineTuneMethod:
        """The same method (its grader too) with these hyperparameters, range-checked."""
        hp = type(self.hyperparameters).model_validate(values)
        block = getattr(self, self.type).model_copy(update={"hyperparameters": hp})
        return self.model_copy(update={self.type: block})


def normalize_method(
    method: FineTuneMethod | None, legacy: FineTuneSupervisedHyperparameters | None
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
    `values` (the scheduler's `auto` rules), or by the JobSpec's default where they have none
    (DPO's `beta`). Values the user gave stay as they are. The result is checked against the
    same ranges."""
    spec = HYPERPARAMETERS[method.type].model_fields
    given = method.hyperparameters.model_dump()
    resolved = {k: values.get(k, spec[k].default) if v == AUTO else v for k, v in given.items()}
    return method.with_hyperparameters(resolved)


def multiplier_for(learning_rate: float) -> float:
    """The `learning_rate_multiplier` a job with its own `learning_rate` reports."""
    most = trainer_spec.MAX_LEARNING_RATE_MULTIPLIER
    return min(most, float(f"{learning_rate / trainer_spec.BASE_LEARNING_RATE:.10g}"))


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
