"""`contracts.spans` on rendered strings: where an answer's loss starts and ends."""

from __future__ import annotations

import pytest

from contracts.spans import answer_span, common_prefix, cut_fields, marked


def _trained(head: str, turn: str, field: str | None) -> str:
    bounds = None
    if field is not None:
        at = turn.index(field)
        bounds = (at, at + len(field))
    start, end = answer_span(head, turn, bounds)
    return turn[start:end]


@pytest.mark.parametrize(
    ("head", "turn", "field", "trained"),
    [
        # the turn continues the prompt: all that follows is the model's
        ("<u>q<a>", "<u>q<a>Hi.<e>\n", "Hi.", "Hi.<e>"),
        (
            "<u>q<a>\n",
            "<u>q<a>\n<think>\nR\n</think>\n\nHi.<e>\n",
            "R",
            "<think>\nR\n</think>\n\nHi.<e>",
        ),
        ("[INST] q [/INST]", "[INST] q [/INST] Hi.</s>", "Hi.", " Hi.</s>"),
        # the prompt has one more newline, or other indentation, than the rendered header
        ("  <u>q<e>\n  <a>\n\n\n", "  <u>q<e>\n      <a>\n\nHi.<e>\n", "Hi.", "Hi.<e>"),
        ("<a>\n\n\n", "<a>\n\n<think>R</think>Hi.<e>", "R", "<think>R</think>Hi.<e>"),
        # the prompt opens a reasoning block the turn does not render
        ("<a>\n<think>\n", "<a>\nHi.<e>", "Hi.", "Hi.<e>"),
        ("<a>\n<think>\n\n</think>\n\n", "<a>\nHi.<e>", "Hi.", "Hi.<e>"),
        # text between the content and the end token is the model's; the newline after is not
        ("<a>\n", "<a>\nHi.\n    <e>\n\n", "Hi.", "Hi.\n    <e>"),
        # fields unknown (the template transforms them): after the prompt, whitespace left out
        ("<a>\n\n\n", "<a>\n\nHi.<e>\n", None, "Hi.<e>"),
    ],
)
def test_answer_span(head: str, turn: str, field: str | None, trained: str) -> None:
    assert _trained(head, turn, field) == trained


def test_marked_fields_are_found_and_cut() -> None:
    message = {"role": "assistant", "content": "Hi.", "reasoning_content": "R",
               "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}  # fmt: skip
    m = marked(message)
    rendered = (
        f"<a>{m['reasoning_content']}|{m['content']}|{m['tool_calls'][0]['function']['name']}"
    )
    found = cut_fields(rendered)
    assert found is not None and found.text == "<a>R|Hi.|f"
    assert found.content == [(5, 8)] and found.other == [(3, 4), (9, 10)]
    assert found.bounds == (3, 10)
    assert cut_fields(m["content"][:-1]) is None  # a mark without its pair


def test_common_prefix() -> None:
    assert common_prefix("abcx", "abcy") == 3
    assert common_prefix("ab", "abc") == 2
    assert common_prefix("", "a") == 0
    assert common_prefix("b", "a") == 0
