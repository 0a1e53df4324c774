"""Where an assistant message's trained text lies in the rendering of its conversation.

For a trained assistant message `i` the chat template renders the conversation twice:
`head`, the messages before it with the generation prompt (what the model is given at
inference), and `turn`, the messages up to it without. The trained span is found by content:

- The message's own fields (content, reasoning_content, tool call names and arguments) are
  rendered once more, each wrapped in a pair of Unicode noncharacters (never part of
  interchanged text); the marks are cut out and their places kept. When the text without the
  marks equals `turn`, the fields' first and last characters are known exactly, wherever the
  template puts them and whatever whitespace surrounds them.
- Where `turn` continues the generation prompt exactly (`head` is a prefix of `turn`),
  everything after it is the model's to write at inference and is trained: `<think>\n` that
  the prompt does not open, an empty reasoning block, a space the template puts before the
  content. Where it does not, the two are compared with their whitespace left out, so that
  the indentation of `{{ ... }}` lines under `trim_blocks`/`lstrip_blocks`, spaces before
  headers and a generation prompt with one more newline than the rendered header do not
  matter: the span starts after the last character they share, less the whitespace there
  (a `<think>` the turn writes and the prompt does not is kept), and no later than the
  message's first field (a prompt that opens `<think>` or an empty reasoning block the turn
  does not render).
- The span ends after the last non-whitespace character of `turn` past the last field: the
  end-of-turn token(s) that close the message (and any text between the content and them),
  never the newline a template writes after them.

Why this and not one of the simpler ways: requiring `turn` to start with `head` refuses the
many templates whose generation prompt differs from the rendered header by whitespace; the
longest common prefix alone stops at the first indentation that differs, inside the
header, and cannot tell a template that never renders the content; replacing the content with two
sentinels and diffing (Axolotl's way) finds the content but not the reasoning and tool calls
around it, and reads a template that branches on the value (`'</think>' in content`) wrongly.
Wrapping the real values keeps every branch the template takes, and the equality check says
when it did not. When a template transforms the values (trims or splits them) so that the
wrapped rendering differs, the span falls back to the common prefix, whitespace skipped, after
checking with two sentinel contents that the template renders the content at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CONTENT_START, CONTENT_END = "\ufdd2", "\ufdd3"
FIELD_START, FIELD_END = "\ufdd4", "\ufdd5"
# Every noncharacter Whetstone marks renderings with (contracts.chat adds U+FDD0, U+FDD1).
MARK_CHARACTERS = "\ufdd0\ufdd1\ufdd2\ufdd3\ufdd4\ufdd5"
_FIELD_MARKS = re.compile("[\ufdd2-\ufdd5]")


@dataclass(frozen=True)
class Fields:
    """The rendered text without field marks and where the marked fields were."""

    text: str
    content: list[tuple[int, int]]
    other: list[tuple[int, int]]  # reasoning and tool calls

    @property
    def bounds(self) -> tuple[int, int] | None:
        spans = self.content + self.other
        if not spans:
            return None
        return min(s for s, _ in spans), max(e for _, e in spans)


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b` (string compares, no loop
    over characters)."""
    if b.startswith(a):
        return len(a)
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def has_content(message: dict[str, Any]) -> bool:
    content = message.get("content")
    if isinstance(content, list):
        return any(isinstance(p, dict) and p.get("text") for p in content)
    return bool(content)


def marked(message: dict[str, Any]) -> dict[str, Any]:
    """The message with each of its non-empty text fields wrapped in marks."""
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str) and content:
        out["content"] = CONTENT_START + content + CONTENT_END
    elif isinstance(content, list):
        out["content"] = [_marked_part(part) for part in content]
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out["reasoning_content"] = FIELD_START + reasoning + FIELD_END
    if isinstance(message.get("tool_calls"), list):
        out["tool_calls"] = [_marked_call(call) for call in message["tool_calls"]]
    return out


def with_content(message: dict[str, Any], text: str) -> dict[str, Any]:
    """The message with its content replaced by `text` (in the content's own shape)."""
    if isinstance(message.get("content"), list):
        return {**message, "content": [{"type": "text", "text": text}]}
    return {**message, "content": text}


def _marked_part(part: Any) -> Any:
    if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
        return {**part, "text": CONTENT_START + part["text"] + CONTENT_END}
    return part


def _marked_call(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return call
    function = dict(function)
    for key in ("name", "arguments"):
        if isinstance(function.get(key), str) and function[key]:
            function[key] = FIELD_START + function[key] + FIELD_END
    return {**call, "function": function}


def cut_fields(text: str) -> Fields | None:
    """`text` without its field marks and the spans they enclosed; `None` when the marks do
    not pair up (the template cut a field apart)."""
    out: list[str] = []
    spans: dict[str, list[tuple[int, int]]] = {CONTENT_START: [], FIELD_START: []}
    opened: dict[str, int | None] = {CONTENT_START: None, FIELD_START: None}
    closes = {CONTENT_END: CONTENT_START, FIELD_END: FIELD_START}
    at = length = 0
    for match in _FIELD_MARKS.finditer(text):
        out.append(text[at : match.start()])
        length += match.start() - at
        at = match.end()
        mark = match.group()
        if mark in opened:
            if opened[mark] is not None:
                return None
            opened[mark] = length
        else:
            start = opened[closes[mark]]
            if start is None:
                return None
            spans[closes[mark]].append((start, length))
            opened[closes[mark]] = None
    if any(v is not None for v in opened.values()):
        return None
    out.append(text[at:])
    return Fields("".join(out), spans[CONTENT_START], spans[FIELD_START])


def answer_span(head: str, turn: str, bounds: tuple[int, int] | None) -> tuple[int, int]:
    """The characters of `turn` that carry loss (see the module's docstring): from where the
    model's own output starts to the end of the turn's closing, trailing whitespace left out.
    `bounds`: the message's fields in `turn`, when known."""
    if turn.startswith(head):
        start = len(head)  # `turn` continues the generation prompt: the rest is output
        last = max(start, bounds[1]) if bounds is not None else start
    else:
        first, last = bounds if bounds is not None else (len(turn), 0)
        shared = _after_shared(head, turn)
        between = turn[shared:first]
        start = min(first, shared + len(between) - len(between.lstrip()))
        last = max(start, last)
    return start, last + len(turn[last:].rstrip())


def same_but_whitespace(head: str, turn: str) -> bool:
    """Whether `turn` continues `head` once whitespace is left out of both."""
    return "".join(turn.split()).startswith("".join(head.split()))


def _after_shared(head: str, turn: str) -> int:
    """The position in `turn` after the last character of the longest common prefix of
    `head` and `turn` with all whitespace left out of both."""
    shared = common_prefix("".join(head.split()), "".join(turn.split()))
    if shared == 0:
        return 0
    found = re.match(rf"(?:\s*\S){{{shared}}}", turn)
    assert found is not None
    return found.end()
