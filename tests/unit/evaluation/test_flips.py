"""A migrated job's report compares the fine-tuned model with its source model example by
example: the flips, lost (the source was right) and gained, with both answers."""

from __future__ import annotations

from service.evaluation.examples import Example
from service.evaluation.report import MAX_FLIPS, Scored, build_report, summary


def examples(n: int) -> list[Example]:
    return [Example(i, i + 2, [{"role": "user", "content": f"q{i}"}], f"a{i}") for i in range(n)]


def test_flips_name_each_example_the_two_models_disagree_on() -> None:
    models = [
        Scored("whetstone-tiny", "base", ["x", "x", "x", "x"]),
        Scored("ft:whetstone-tiny:p::1", "fine_tuned", ["a0", "wrong", "a2", "no"]),
        Scored("ft:gpt-4o-mini-2024-07-18:acme::AbC", "source", ["a0", "a1", "nope", "no"]),
    ]
    report = build_report(examples(4), models, data="validation_file", file="file-v",
                          outliers=[], seconds=1.0)  # fmt: skip
    assert report["flips"] == {
        "lost": 1, "gained": 1,
        "examples": [
            {"flip": "lost", "line": 3, "prompt": "user: q1", "reference": "a1",
             "source": "a1", "fine_tuned": "wrong"},
            {"flip": "gained", "line": 4, "prompt": "user: q2", "reference": "a2",
             "source": "nope", "fine_tuned": "a2"},
        ],
    }  # fmt: skip
    assert summary(report).endswith("on the validation file; against the source: 1 lost, 1 gained")


def test_flips_are_counted_in_full_and_shown_up_to_the_cap() -> None:
    n = MAX_FLIPS + 5
    models = [
        Scored("ft:whetstone-tiny:p::1", "fine_tuned", ["x"] * n),
        Scored("ft:gpt-4o-mini-2024-07-18:acme::AbC", "source", [f"a{i}" for i in range(n)]),
    ]
    report = build_report(examples(n), models, data="held_out", file="file-t",
                          outliers=[], seconds=1.0)  # fmt: skip
    assert report["flips"]["lost"] == n and report["flips"]["gained"] == 0
    assert len(report["flips"]["examples"]) == MAX_FLIPS


def test_no_flips_without_a_source_or_when_it_could_not_be_read() -> None:
    tuned = Scored("ft:whetstone-tiny:p::1", "fine_tuned", ["a0"])
    alone = build_report(examples(1), [tuned], data="validation_file", file="f", outliers=[],
                         seconds=0.1)  # fmt: skip
    unread = Scored("ft:gpt-4o-mini-2024-07-18:acme::AbC", "source", None, error="gone")
    broken = build_report(examples(1), [tuned, unread], data="validation_file", file="f",
                          outliers=[], seconds=0.1)  # fmt: skip
    assert "flips" not in alone and "flips" not in broken
