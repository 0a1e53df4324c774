"""The reinforcement trainer's grading side: a trainer without a service scores model graders
0 with the reason, and the GRPO pieces that need no model (advantages, the template's
reasoning switch). Model graders reaching the service's grading route over HTTP:
tests/integration/trainer/test_grading_route.py."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.graders.run import grade
from contracts.graders.schema import ScoreModelGrader
from contracts.spec import JobSpec
from trainer.grading import context, failure_summary, sum_up

GRADER = ScoreModelGrader.model_validate({
    "type": "score_model", "name": "judge", "model": "whetstone-tiny",
    "input": [{"role": "user", "content": "Score {{sample.output_text}} against {{item.answer}}"}],
})  # fmt: skip


def spec() -> JobSpec:
    """A reinforcement job graded by `GRADER`."""
    return JobSpec.model_validate({
        "job_id": "ftjob-grading", "base_model": {"name": "t", "path": "/nowhere"},
        "training_file": "file:///nowhere.jsonl", "output": "file:///nowhere/",
        "method": {"type": "reinforcement", "grader": GRADER.model_dump()},
    })  # fmt: skip


def test_without_a_service_a_model_grader_scores_zero_and_says_why() -> None:
    ctx = context(spec(), None, None)
    grades = [grade(GRADER, text, {"answer": "Yes."}, ctx) for text in ("Yes.", "No.")]
    rewards = sum_up(GRADER, grades)

    assert rewards.rewards == [0.0, 0.0] and len(rewards.failed) == 2
    summary = failure_summary(rewards, "Step 1")
    assert summary is not None and summary.startswith(
        "Step 1: the grader failed on 2 of 2 samples, each scored 0 "
        "(first: model_grader_server_error: No grading model is reachable here."
    )


def test_group_normalised_advantages() -> None:
    pytest.importorskip("torch")
    from trainer.grpo import advantages

    values = advantages([1.0, 0.0, 0.0, 1.0])
    assert values == pytest.approx([0.866, -0.866, -0.866, 0.866], abs=1e-3)
    assert sum(values) == pytest.approx(0.0)
    assert advantages([0.5, 0.5, 0.5]) == [0.0, 0.0, 0.0]  # nothing to prefer


@pytest.mark.parametrize(
    ("template", "effort", "expected"),
    [
        ("{% if enable_thinking %}<think>{% endif %}", "low", {"enable_thinking": False}),
        ("{% if enable_thinking %}<think>{% endif %}", "high", {"enable_thinking": True}),
        ("{{ reasoning_effort }}", "medium", {"reasoning_effort": "medium"}),
        ("{{ reasoning_effort }}", "default", {}),
        ("{{ messages }}", "low", {}),
    ],
)
def test_reasoning_effort_becomes_the_templates_switch(
    template: str, effort: str, expected: dict[str, Any]
) -> None:
    pytest.importorskip("torch")
    from trainer.grpo import reasoning_kwargs

    assert reasoning_kwargs(template, effort) == expected
