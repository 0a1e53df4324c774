"""The rules of the messages in a dataset line, the same in every line format
(`contracts.formats`): a known role; content as a string or a list of text parts; `weight`,
`tool_calls` and `reasoning_content` on assistant messages only; a tool message's
`tool_call_id`; and the line's `tools` and `parallel_tool_calls`. Each rule answers why a
message is invalid (a sentence naming `where` it is), or `None`.

Standard library only, as `contracts.formats` is: the SDK checks files with it too.
"""

from __future__ import annotations

from typing import Any

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def _content_problem(msg: dict[str, Any], where: str) -> str | None:
    content = msg.get("content")
    if content is None:
        if msg.get("role") == "assistant" and msg.get("tool_calls"):
            return None
        return f"missing content in {where}"
    if isinstance(content, str):
        return None
    if isinstance(content, list) and content:
        for i, part in enumerate(content):
            if not (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                return f"{where}.content[{i}] is not a text part ({{'type': 'text', 'text': ...}})"
        return None
    return f"missing content in {where}: content must be a string or a list of text parts"


def _tool_calls_problem(calls: Any, where: str) -> str | None:
    if not isinstance(calls, list) or not calls:
        return f"bad tool_calls in {where}: must be a non-empty list"
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not (
            isinstance(fn, dict)
            and isinstance(call.get("id"), str)
            and call.get("type", "function") == "function"
            and isinstance(fn.get("name"), str)
            and isinstance(fn.get("arguments"), str)
        ):
            return (
                f"bad tool_calls in {where}: tool_calls[{i}] needs `id`, `type: function` and "
                "`function` with string `name` and `arguments`"
            )
    return None


def _message_problem(msg: Any, where: str) -> str | None:
    if not isinstance(msg, dict):
        return f"{where} is not an object"
    role = msg.get("role")
    if role not in ROLES:
        if role is None:
            return f"missing role in {where}"
        return f"unknown role {role!r} in {where} (expected one of {', '.join(sorted(ROLES))})"
    if "weight" in msg:
        weight = msg["weight"]
        if role != "assistant":
            return f"bad weight in {where}: `weight` is only allowed on assistant messages"
        if isinstance(weight, bool) or weight not in (0, 1):
            return f"bad weight in {where}: must be 0 or 1, got {weight!r}"
    if "tool_calls" in msg:
        if role != "assistant":
            return f"bad tool_calls in {where}: only assistant messages make tool calls"
        problem = _tool_calls_problem(msg["tool_calls"], where)
        if problem:
            return problem
    if "reasoning_content" in msg:
        if role != "assistant":
            return f"bad reasoning_content in {where}: only assistant messages reason"
        if not isinstance(msg["reasoning_content"], str):
            return f"bad reasoning_content in {where}: must be a string"
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        return f"missing tool_call_id in {where}"
    return _content_problem(msg, where)


def messages_problem(messages: Any, where: str) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"`{where}` must be a non-empty list of messages"
    for i, msg in enumerate(messages):
        problem = _message_problem(msg, f"{where}[{i}]")
        if problem:
            return problem
    return None


def tools_problem(holder: dict[str, Any], where: str) -> str | None:
    if "tools" in holder:
        tools = holder["tools"]
        if not isinstance(tools, list):
            return f"bad tools in {where}: must be a list"
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not (
                isinstance(fn, dict)
                and tool.get("type") == "function"
                and isinstance(fn.get("name"), str)
            ):
                return (
                    f"bad tools in {where}: tools[{i}] needs `type: function` and a `function.name`"
                )
    ptc = holder.get("parallel_tool_calls")
    if ptc is not None and not isinstance(ptc, bool):
        return f"bad parallel_tool_calls in {where}: must be true or false"
    return None
