"""`auto` hyperparameters: OpenAI's epoch rule and Whetstone's batch size and rate rules."""

from __future__ import annotations

import pytest

from service.scheduler.hyperparameters import (
    auto_batch_size,
    auto_epochs,
    auto_learning_rate_multiplier,
    resolve,
)


@pytest.mark.parametrize(
    ("n", "epochs"),
    [
        (10, 10),  # 3n = 30 < 100: min(25, 100 // 10)
        (3, 25),  # 100 // 3 = 33, capped at 25
        (16, 6),  # the demo dataset
        (33, 3),  # 3n = 99 < 100: 100 // 33 = 3
        (34, 3),
        (8333, 3),  # 3n = 24999
        (8334, 2),  # 3n = 25002 > 25000: 25000 // 8334
        (30000, 1),
    ],
)
def test_epochs_follow_openai_rule(n: int, epochs: int) -> None:
    assert auto_epochs(n) == epochs


@pytest.mark.parametrize(
    ("n", "batch"), [(10, 1), (127, 1), (128, 2), (256, 4), (1000, 8), (10**6, 32)]
)
def test_batch_size_grows_with_the_dataset(n: int, batch: int) -> None:
    assert auto_batch_size(n) == batch


@pytest.mark.parametrize("n", [10, 16, 99, 316, 1000, 10**6])
def test_learning_rate_multiplier_is_the_base_lora_rate_for_every_size(n: int) -> None:
    # 1 x 2e-4: a pretrained model's LoRA rate; the tiny random model asks for its own.
    assert auto_learning_rate_multiplier(n) == 1.0


def test_given_values_are_kept_and_auto_resolved() -> None:
    resolved = resolve({"n_epochs": 2, "batch_size": "auto"}, 16)
    assert resolved.as_dict() == {
        "n_epochs": 2,
        "batch_size": 1,
        "learning_rate_multiplier": 1.0,
    }
    assert resolve({}, 16).n_epochs == 6
    assert resolve({"learning_rate_multiplier": 10}, 16).learning_rate_multiplier == 10.0


def test_a_base_models_own_auto_replaces_the_rules_but_not_the_users_values() -> None:
    from serving.launcher import AutoHyperparameters

    own = AutoHyperparameters(n_epochs=25, learning_rate_multiplier=10)
    assert resolve({}, 16, own).as_dict() == {
        "n_epochs": 25,
        "batch_size": 1,
        "learning_rate_multiplier": 10.0,
    }
    given = {"n_epochs": 2, "learning_rate_multiplier": 0.5}
    assert resolve(given, 16, own).as_dict()["n_epochs"] == 2
    assert resolve(given, 16, own).learning_rate_multiplier == 0.5
    # A family that wants a lower rate sets only that; its epochs follow OpenAI's rule.
    lower = resolve({}, 16, AutoHyperparameters(learning_rate_multiplier=0.5))
    assert (lower.n_epochs, lower.learning_rate_multiplier) == (6, 0.5)
