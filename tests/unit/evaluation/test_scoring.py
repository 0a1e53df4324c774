"""How the evaluation report scores an answer, and which training lines a job holds out."""

from __future__ import annotations

import pytest

from contracts.holdout import held_out_lines
from service.evaluation.examples import Example, split_example
from service.evaluation.report import Scored, build_report, summary
from service.evaluation.scoring import exact_match, f1, score


def test_exact_match_ignores_surrounding_space_only() -> None:
    assert exact_match("  Quillhaven.\n", "Quillhaven.")
    assert not exact_match("quillhaven.", "Quillhaven.")
    assert not exact_match("Quillhaven", "Quillhaven.")


def test_f1_is_squad_token_overlap_lowercased() -> None:
    assert f1("The capital is Quillhaven", "the capital is quillhaven") == 1.0
    # 2 common tokens; precision 2/3, recall 2/4
    assert f1("capital is Veloria", "the capital is Quillhaven") == pytest.approx(4 / 7)
    assert f1("nothing alike", "the capital") == 0.0
    assert f1("a a a", "a") == pytest.approx(0.5)  # tokens counted with multiplicity
    assert f1("", "") == 1.0 and f1("", "x") == 0.0


def test_score_averages_over_the_examples() -> None:
    result = score(["yes", "no", "maybe so"], ["yes", "yes", "maybe"])
    assert result.matches == 1 and result.examples == 3
    assert result.exact_match == pytest.approx(1 / 3)
    assert result.f1 == pytest.approx((1 + 0 + 2 / 3) / 3)
    with pytest.raises(ValueError):
        score(["a"], ["a", "b"])


def test_prompt_is_every_message_before_the_last_assistant_message() -> None:
    example = {"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": "Quillhaven", "weight": 1},
    ]}  # fmt: skip
    prompt, reference = split_example(example)  # type: ignore[misc]
    assert reference == "Quillhaven"
    assert [m["content"] for m in prompt] == ["Be brief.", "Hi", "Hello", "Capital?"]
    assert split_example({"messages": [{"role": "user", "content": "x"}]}) is None


def test_held_out_lines_are_stable_bounded_and_left_out_of_small_files() -> None:
    lines = held_out_lines(100, seed=7, fraction=0.1, cap=50, min_lines=50)
    assert len(lines) == 10 and lines == sorted(lines) and set(lines) <= set(range(1, 101))
    assert lines == held_out_lines(100, seed=7, fraction=0.1, cap=50, min_lines=50)
    assert held_out_lines(100, seed=8, fraction=0.1, cap=50, min_lines=50) != lines
    assert len(held_out_lines(1000, seed=7, fraction=0.1, cap=50, min_lines=50)) == 50
    assert held_out_lines(49, seed=7, fraction=0.1, cap=50, min_lines=50) == []
    assert held_out_lines(100, seed=7, fraction=0.0, cap=50, min_lines=50) == []


def test_summary_names_the_fine_tuned_and_base_counts() -> None:
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    examples = [Example(i, i + 1, prompts[i], f"a{i}") for i in range(3)]
    models = [
        Scored("base", "base", ["x", "y", "z"]),
        Scored("ft:base:p::1", "fine_tuned", ["a0", "a1", "z"]),
        Scored("ft:base:p::1:ckpt-step-3", "checkpoint", None, 3, error="gone"),
    ]
    report = build_report(examples, models, data="validation_file", file="file-v",
                          outliers=[], seconds=1.5)  # fmt: skip
    expected = "Evaluation: exact match 2/3 fine-tuned, 0/3 base on the validation file"
    assert summary(report) == expected
    assert report["models"][1]["exact_match"] == pytest.approx(2 / 3)
    assert report["models"][2]["exact_match"] is None and report["models"][2]["step"] == 3
    assert report["samples"][0] == {"prompt": "user: q0", "reference": "a0", "base": "x",
                                    "fine_tuned": "a0"}  # fmt: skip


def test_a_report_shows_at_most_20_samples_and_scores_every_example() -> None:
    examples = [
        Example(i, i + 1, [{"role": "user", "content": f"q{i}"}], f"a{i}") for i in range(25)
    ]
    models = [
        Scored("base", "base", ["x"] * 25),
        Scored("ft:base:p::1", "fine_tuned", [f"a{i}" for i in range(25)]),
    ]
    report = build_report(examples, models, data="validation_file", file="file-v",
                          outliers=[], seconds=0.1)  # fmt: skip
    assert report["examples"] == 25 and report["models"][1]["matches"] == 25
    assert [s["reference"] for s in report["samples"]] == [f"a{i}" for i in range(20)]
