"""`auto` hyperparameters: OpenAI's epoch rule and Whetstone's batch size and rate rules."""

from __future__ import annotations

import pytest

from service.fine_tuning.auto_hyperparameters import (
    auto_batch_size,
    auto_epochs,
    auto_learning_rate_multiplier,
    resolve,
    resolve_reinforcement,
)
from serving.launcher import AutoHyperparameters


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


@pytest.mark.parametrize(
    ("n", "epochs", "batch", "interval"),
    [
        (10, 3, 1, 6),  # ceil(30 / 10) epochs of 10 steps: 30 steps, a validation every 6
        (12, 3, 1, 8),  # 36 steps
        (5, 6, 1, 6),
        (16, 2, 2, 4),  # 16 / 8 = 2 prompts a step
        (64, 1, 8, 2),  # 8 steps
        (10_000, 1, 8, 250),
    ],
)
def test_reinforcement_auto_rules(n: int, epochs: int, batch: int, interval: int) -> None:
    values = resolve_reinforcement({}, n)
    assert values == {
        "n_epochs": epochs, "batch_size": batch, "learning_rate_multiplier": 0.25,
        "compute_multiplier": 1.0, "eval_interval": interval, "eval_samples": 1,
    }  # fmt: skip


def test_reinforcement_keeps_given_values_and_the_models_own_rate() -> None:
    given = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": "auto",
             "compute_multiplier": 2.5, "eval_interval": "auto", "eval_samples": 3,
             "reasoning_effort": "high"}  # fmt: skip
    own = AutoHyperparameters(n_epochs=25, learning_rate_multiplier=10)
    values = resolve_reinforcement(given, 40, own)
    assert values == {
        "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 10.0,
        "compute_multiplier": 2.5, "eval_interval": 4, "eval_samples": 3,
    }  # fmt: skip  # 20 steps; the model's own epochs are for supervised jobs only
