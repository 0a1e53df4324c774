"""Whetstone's `lora` and `learning_rate` extension fields: limits from `contracts.spec`, the
defaults filled in, and the multiplier a job with its own learning rate reports."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts import spec as trainer_spec
from contracts.spec import LoraConfig
from service.errors import InvalidRequest
from service.fine_tuning.extensions import LoraOptions, LoraSettings
from service.fine_tuning.hyperparameters import (
    AUTO,
    FineTuneMethod,
    multiplier_for,
    normalize_method,
    peak_learning_rate,
    with_learning_rate,
)
from service.fine_tuning.schemas import CreateFineTuningJobRequest

BAD_LORA: list[tuple[str, Any]] = [
    ("r", 0), ("r", trainer_spec.LORA_MAX_R + 1), ("r", 8.5), ("r", "8"), ("r", True),
    ("alpha", 0), ("alpha", trainer_spec.LORA_MAX_ALPHA + 1),
    ("dropout", -0.1), ("dropout", 1), ("dropout", "high"),
    ("target_modules", []), ("target_modules", "q_proj"), ("target_modules", ["q proj"]),
    ("target_modules", ["q_proj", "q_proj"]), ("target_modules", [3]),
    ("target_modules", ["m"] * (trainer_spec.LORA_MAX_TARGET_MODULES + 1)),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), BAD_LORA)
def test_bad_lora_values_name_their_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CreateFineTuningJobRequest.model_validate(
            {"model": "m", "training_file": "file-1", "lora": {field: value}}
        )
    (error,) = info.value.errors()
    assert error["loc"] == ("lora", field), error
    assert "got" in error["msg"] or "repeat" in error["msg"]


def test_unknown_lora_setting_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        LoraOptions.model_validate({"rank": 8})
    assert info.value.errors()[0]["loc"] == ("rank",)


def test_lora_takes_the_jobspec_defaults_for_what_is_left_out() -> None:
    given = LoraOptions.model_validate({"r": 32, "target_modules": ["q_proj", "self_attn.v_proj"]})
    assert given.resolved() == LoraConfig(r=32, target_modules=["q_proj", "self_attn.v_proj"])
    assert LoraOptions().resolved() == LoraConfig()
    assert LoraOptions(r=None, dropout=0.05).resolved().dropout == 0.05
    assert LoraSettings.of(None).model_dump() == LoraConfig().model_dump()


@pytest.mark.parametrize("value", [0, -1e-4, trainer_spec.MAX_LEARNING_RATE * 1.01, "auto", "1e-4"])
def test_bad_learning_rate_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CreateFineTuningJobRequest.model_validate(
            {"model": "m", "training_file": "file-1", "learning_rate": value}
        )
    (error,) = info.value.errors()
    assert error["loc"] == ("learning_rate",) and "must be a number greater than 0" in error["msg"]


def test_learning_rate_sets_the_reported_multiplier() -> None:
    method = with_learning_rate(normalize_method(None, None), 1e-4)
    assert method.hyperparameters.learning_rate_multiplier == 0.5
    assert method.hyperparameters.n_epochs == AUTO
    assert multiplier_for(trainer_spec.MAX_LEARNING_RATE) == 10.0
    assert multiplier_for(3e-4) == 1.5  # not 1.4999999999999998
    dpo = with_learning_rate(normalize_method(FineTuneMethod(type="dpo"), None), 4e-4)
    assert dpo.hyperparameters.learning_rate_multiplier == 2.0


def test_learning_rate_and_a_multiplier_conflict() -> None:
    method = FineTuneMethod.model_validate(
        {"type": "supervised",
         "supervised": {"hyperparameters": {"learning_rate_multiplier": 2}}}
    )  # fmt: skip
    with pytest.raises(InvalidRequest) as info:
        with_learning_rate(normalize_method(method, None), 1e-4)
    assert info.value.param == "learning_rate"
    assert with_learning_rate(method, None) is method


def test_a_job_reports_its_peak_learning_rate() -> None:
    assert peak_learning_rate(1e-4, 0.5) == 1e-4
    assert peak_learning_rate(None, 2.0) == 4e-4
    assert peak_learning_rate(None, 3) == 6e-4  # not 0.0006000000000000001
    assert peak_learning_rate(None, AUTO) is None
