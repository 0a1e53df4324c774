"""Hyperparameter ranges (OpenAI's spec), method normalisation and `auto` resolution."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import InvalidRequest
from service.fine_tuning.hyperparameters import (
    AUTO,
    FineTuneDPOHyperparameters,
    FineTuneMethod,
    FineTuneSupervisedHyperparameters,
    normalize_method,
    with_learning_rate,
    with_resolved,
)

GOOD: list[tuple[str, Any]] = [
    ("batch_size", 1), ("batch_size", 256), ("n_epochs", 1), ("n_epochs", 50),
    ("learning_rate_multiplier", 0.001), ("learning_rate_multiplier", 10),
    ("batch_size", "auto"),
]  # fmt: skip
BAD: list[tuple[str, Any]] = [
    ("batch_size", 0), ("batch_size", 257), ("batch_size", 2.5), ("batch_size", True),
    ("batch_size", "8"), ("n_epochs", 0), ("n_epochs", 51),
    ("learning_rate_multiplier", 0), ("learning_rate_multiplier", -1),
    ("learning_rate_multiplier", 10.5), ("learning_rate_multiplier", "fast"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), GOOD)
def test_values_in_range_are_kept(field: str, value: Any) -> None:
    assert getattr(FineTuneSupervisedHyperparameters.model_validate({field: value}), field) == value


@pytest.mark.parametrize(("field", "value"), BAD)
def test_values_out_of_range_name_their_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        FineTuneSupervisedHyperparameters.model_validate({field: value})
    (error,) = info.value.errors()
    assert error["loc"] == (field,) and "must be 'auto' or" in error["msg"]


@pytest.mark.parametrize(("value", "ok"), [(2, True), (0.01, True), (0, False), (2.01, False)])
def test_dpo_beta_range(value: float, ok: bool) -> None:
    if ok:
        assert FineTuneDPOHyperparameters(beta=value).beta == value
    else:
        with pytest.raises(ValidationError):
            FineTuneDPOHyperparameters(beta=value)


def test_beta_is_not_a_supervised_hyperparameter() -> None:
    with pytest.raises(ValidationError) as info:
        FineTuneSupervisedHyperparameters.model_validate({"beta": 0.5})
    assert info.value.errors()[0]["loc"] == ("beta",)


def test_reinforcement_without_a_grader_names_the_grader() -> None:
    method = FineTuneMethod.model_validate({"type": "reinforcement"})
    with pytest.raises(InvalidRequest) as info:
        normalize_method(method, None)
    assert info.value.param == "method.reinforcement.grader"
    with pytest.raises(ValidationError) as shape:
        FineTuneMethod.model_validate({"type": "reinforcement", "reinforcement": {}})
    assert shape.value.errors()[0]["loc"] == ("reinforcement", "grader")


def test_legacy_hyperparameters_map_to_supervised() -> None:
    method = normalize_method(None, FineTuneSupervisedHyperparameters(n_epochs=4))
    assert method.type == "supervised" and method.hyperparameters.n_epochs == 4
    dumped = method.model_dump()
    assert set(dumped) == {"type", "supervised"} and set(dumped["supervised"]) == {
        "hyperparameters"
    }
    hp = dumped["supervised"]["hyperparameters"]
    assert {"batch_size", "learning_rate_multiplier"} <= set(hp) and hp.pop("n_epochs") == 4
    assert set(hp.values()) == {AUTO}  # every other one


@pytest.mark.parametrize(
    ("method", "param"),
    [
        ({"type": "dpo"}, "hyperparameters"),
        (
            {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
            "hyperparameters",
        ),
    ],
)
def test_legacy_hyperparameters_conflicting_with_method(method: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize_method(FineTuneMethod.model_validate(method), FineTuneSupervisedHyperparameters())
    assert info.value.param == param


def test_block_of_the_other_method_is_refused() -> None:
    method = FineTuneMethod.model_validate({"type": "supervised", "dpo": {}})
    with pytest.raises(InvalidRequest) as info:
        normalize_method(method, None)
    assert info.value.param == "method.dpo"


def test_with_resolved_fills_auto_and_keeps_given_values() -> None:
    method = normalize_method(None, FineTuneSupervisedHyperparameters(n_epochs=7))
    values = {"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 1.5}
    resolved = with_resolved(method, values).hyperparameters
    assert (resolved.n_epochs, resolved.batch_size, resolved.learning_rate_multiplier) == (
        7,
        2,
        1.5,
    )


def test_with_resolved_gives_dpo_a_beta() -> None:
    method = normalize_method(FineTuneMethod.model_validate({"type": "dpo"}), None)
    values = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}
    reported = with_resolved(method, values).model_dump()
    assert reported["type"] == "dpo" and "supervised" not in reported
    hp = reported["dpo"]["hyperparameters"]
    assert 0 < hp["beta"] <= 2 and AUTO not in hp.values()


def test_with_resolved_checks_ranges() -> None:
    with pytest.raises(ValidationError):
        with_resolved(normalize_method(None, None), {"n_epochs": 0})


GRADER = {"type": "string_check", "name": "exact", "operation": "eq",
          "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}  # fmt: skip


def test_a_reinforcement_method_keeps_its_grader_through_resolution_and_learning_rate() -> None:
    given = {"eval_samples": 4, "reasoning_effort": "high"}
    method = normalize_method(
        FineTuneMethod.model_validate(
            {"type": "reinforcement",
             "reinforcement": {"grader": GRADER, "hyperparameters": given}}
        ),
        None,
    )  # fmt: skip
    with_rate = with_learning_rate(method, 1e-4)
    values = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 0.25,
              "compute_multiplier": 1.0, "eval_interval": 6, "eval_samples": 1}  # fmt: skip
    reported = with_resolved(with_rate, values).model_dump(mode="json")
    assert set(reported) == {"type", "reinforcement"} and reported["type"] == "reinforcement"
    block = reported["reinforcement"]
    assert set(block) == {"grader", "hyperparameters"}
    assert block["grader"] == GRADER  # as given: no field filled in
    expected = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 0.5,
                "compute_multiplier": 1.0, "eval_interval": 6, "eval_samples": 4,
                "reasoning_effort": "high"}  # fmt: skip
    hp = block["hyperparameters"]
    assert {k: hp[k] for k in expected} == expected and AUTO not in hp.values()
    again = FineTuneMethod.model_validate(reported)  # as the job row stores it
    assert again.model_dump(mode="json") == reported


def test_reinforcement_takes_no_legacy_hyperparameters() -> None:
    method = FineTuneMethod.model_validate(
        {"type": "reinforcement", "reinforcement": {"grader": GRADER}}
    )
    with pytest.raises(InvalidRequest) as info:
        normalize_method(method, FineTuneSupervisedHyperparameters())
    assert info.value.param == "hyperparameters"
