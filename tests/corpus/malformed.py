"""Malformed fine-tuning datasets, each with the lines that must be reported and why.

Shared by the server's upload tests and the SDK's local validation tests: both must refuse
every case here with exactly these line numbers and a reason containing `reason`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    lines: tuple[int, ...]
    reason: str


def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _chat(*messages: dict[str, Any], **extra: Any) -> bytes:
    return _j({"messages": list(messages), **extra})


U = {"role": "user", "content": "What is the capital of Veloria?"}
A = {"role": "assistant", "content": "Quessa."}
S = {"role": "system", "content": "You answer briefly."}
GOOD = _chat(S, U, A)
PREF_GOOD = _j(
    {
        "input": {"messages": [U]},
        "preferred_output": [A],
        "non_preferred_output": [{"role": "assistant", "content": "Paris."}],
    }
)
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}

CASES: list[Case] = [
    Case("empty_file", b"", (), "empty file"),
    Case("only_blank_lines", b"\n\n  \n", (), "empty file"),
    Case("invalid_json", GOOD + b'{"messages": [\n' + GOOD, (2,), "invalid JSON"),
    Case("truncated_last_line", GOOD + GOOD[:-10], (2,), "invalid JSON"),
    Case("not_utf8", GOOD + b'{"messages": "\xff\xfe"}\n', (2,), "not UTF-8"),
    Case("latin1_text", GOOD + GOOD.replace(b"Quessa", b"Qu\xe9ssa"), (2,), "not UTF-8"),
    Case("top_level_array", GOOD + b"[1, 2]\n", (2,), "not a JSON object"),
    Case("top_level_string", b'"hello"\n' + GOOD, (1,), "not a JSON object"),
    Case("no_messages_key", _j({"prompt": "a", "completion": "b"}), (1,), "no `messages`"),
    Case("messages_not_list", _j({"messages": "hi"}), (1,), "non-empty list"),
    Case("messages_empty", GOOD + _j({"messages": []}), (2,), "non-empty list"),
    Case("message_not_object", _chat(U, "assistant: hi"), (1,), "is not an object"),  # type: ignore[arg-type]
    Case("unknown_role", GOOD + _chat({"role": "robot", "content": "x"}, A), (2,), "unknown role"),
    Case("missing_role", _chat({"content": "x"}, A), (1,), "missing role"),
    Case("missing_content", GOOD + GOOD + _chat({"role": "user"}, A), (3,), "missing content"),
    Case("null_content_user", _chat({"role": "user", "content": None}, A), (1,), "missing content"),
    Case("content_number", _chat({"role": "user", "content": 42}, A), (1,), "missing content"),
    Case(
        "image_part",
        _chat({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, A),
        (1,),
        "not a text part",
    ),
    # A line ending with a user message is a reinforcement prompt (valid): one that ends
    # with a system message has nothing to train on nor to answer.
    Case("no_assistant", _chat(U, S), (1,), "no assistant message"),
    Case(
        "all_weights_zero",
        _chat(U, {**A, "weight": 0}),
        (1,),
        "no assistant message to train on",
    ),
    Case("weight_two", _chat(U, {**A, "weight": 2}), (1,), "bad weight"),
    Case("weight_string", _chat(U, {**A, "weight": "1"}), (1,), "bad weight"),
    Case("weight_on_user", _chat({**U, "weight": 1}, A), (1,), "bad weight"),
    Case(
        "tool_calls_on_user",
        _chat({**U, "tool_calls": [CALL]}, A),
        (1,),
        "bad tool_calls",
    ),
    Case(
        "tool_call_without_function",
        _chat(U, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
        (1,),
        "bad tool_calls",
    ),
    Case(
        "tool_message_without_id",
        _chat(U, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "1"}, A),
        (1,),
        "missing tool_call_id",
    ),
    Case("tools_not_list", _chat(U, A, tools={"type": "function"}), (1,), "bad tools"),
    Case(
        "parallel_tool_calls_string", _chat(U, A, parallel_tool_calls="yes"), (1,), "bad parallel"
    ),
    Case("mixed_formats", GOOD + PREF_GOOD, (2,), "mixed formats"),
    Case("mixed_formats_pref_first", PREF_GOOD + PREF_GOOD + GOOD, (3,), "mixed formats"),
    Case(
        "preference_missing_non_preferred",
        _j({"input": {"messages": [U]}, "preferred_output": [A]}),
        (1,),
        "missing `non_preferred_output`",
    ),
    Case(
        "preference_user_output",
        _j({"input": {"messages": [U]}, "preferred_output": [U], "non_preferred_output": [A]}),
        (1,),
        "must be an assistant message",
    ),
    Case(
        "preference_no_input_messages",
        _j({"input": {}, "preferred_output": [A], "non_preferred_output": [A]}),
        (1,),
        "input.messages",
    ),
    Case(
        "many_bad_lines_first_five_reported",
        GOOD + b"{bad\n" * 7,
        (2, 3, 4, 5, 6),
        "invalid JSON",
    ),
    Case("bad_line_after_blank_lines", GOOD + b"\n\n" + b"nope\n", (4,), "invalid JSON"),
    Case("crlf_bad_line", GOOD.replace(b"\n", b"\r\n") + b"{x\r\n", (2,), "invalid JSON"),
    Case("reasoning_number", _chat(U, {**A, "reasoning_content": 42}), (1,), "bad reasoning"),
    Case("reasoning_on_user", _chat({**U, "reasoning_content": "x"}, A), (1,), "bad reasoning"),
    Case(
        "template_kwargs_list",
        GOOD + _chat(U, A, chat_template_kwargs=["enable_thinking"]),
        (2,),
        "bad chat_template_kwargs",
    ),
]

GOOD_FILES: list[tuple[str, bytes]] = [
    ("chat", GOOD * 3),
    (
        "chat_reasoning_and_template_kwargs",
        _chat(
            U, {**A, "reasoning_content": "Think."}, chat_template_kwargs={"enable_thinking": False}
        ),
    ),
    ("chat_no_trailing_newline", GOOD * 2 + GOOD[:-1]),
    ("chat_crlf_and_bom", b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n") * 2),
    (
        "chat_text_parts_weights_tools",
        _chat(
            S,
            {"role": "user", "content": [{"type": "text", "text": "Add 1 and 2."}]},
            {"role": "assistant", "tool_calls": [CALL], "weight": 0},
            {"role": "tool", "tool_call_id": "call_1", "content": "3"},
            {**A, "weight": 1},
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
            parallel_tool_calls=False,
        ),
    ),
    ("developer_role", _chat({"role": "developer", "content": "Be brief."}, U, A)),
    ("preference", PREF_GOOD * 2),
    ("blank_lines_between", GOOD + b"\n   \n" + GOOD),
]
