"""Fine-tuned and checkpoint model names."""

from __future__ import annotations

from contracts.names import (
    base_model_of,
    checkpoint_model_name,
    fine_tuned_model_name,
    is_valid_name,
    project_segment,
    short_id,
    split_checkpoint_name,
)

JOB = "ftjob-AbCdEfGh12345678901234ab"


def test_fine_tuned_name_with_and_without_suffix() -> None:
    assert short_id(JOB) == "AbCdEfGh"
    assert fine_tuned_model_name("whetstone-tiny", "alpha", "support", JOB) == (
        "ft:whetstone-tiny:alpha:support:AbCdEfGh"
    )
    # An empty suffix leaves an empty segment, as OpenAI's names do.
    assert fine_tuned_model_name("whetstone-tiny", "alpha", None, JOB) == (
        "ft:whetstone-tiny:alpha::AbCdEfGh"
    )


def test_checkpoint_name_round_trips() -> None:
    model = "ft:whetstone-tiny:alpha::AbCdEfGh"
    name = checkpoint_model_name(model, 40)
    assert name == "ft:whetstone-tiny:alpha::AbCdEfGh:ckpt-step-40"
    assert split_checkpoint_name(name) == (model, 40)
    assert split_checkpoint_name(model) is None


def test_project_segment_falls_back_to_the_id_for_unsafe_names() -> None:
    assert project_segment("proj-123", "alpha_team-2") == "alpha_team-2"
    for unsafe in ("a:b", "a/b", "a b", "..", "x" * 65, ""):
        assert project_segment("proj-123", unsafe) == "proj-123"


def test_names_are_ones_the_lora_resolver_accepts() -> None:
    name = fine_tuned_model_name("whetstone-tiny", project_segment("proj-1", "a b"), None, JOB)
    assert is_valid_name(name) and is_valid_name(checkpoint_model_name(name, 3))


def test_base_model_is_read_back_from_fine_tuned_and_checkpoint_names() -> None:
    name = fine_tuned_model_name("whetstone-tiny", "alpha", None, JOB)
    assert base_model_of(name) == "whetstone-tiny"
    assert base_model_of(checkpoint_model_name(name, 3)) == "whetstone-tiny"
    for other in ("whetstone-tiny", "ft:x", "gpt:x:y", ""):
        assert base_model_of(other) is None
