"""The dataset line formats: chat and preference JSONL, checked line by line.

This module is the one definition of a valid fine-tuning file. The server checks uploads
with it as they stream, the SDK checks files locally before uploading, and the trainer reads
examples with it. It needs only the standard library (and `orjson` when installed, for speed)
so that the SDK can be published alone.

Chat line (`format == "chat"`)::

    {"messages": [{"role": "system" | "developer" | "user" | "assistant" | "tool",
                   "content": "text" | [{"type": "text", "text": "..."}],
                   "weight": 0 | 1,            # assistant messages only
                   "tool_calls": [...],        # assistant messages only
                   "reasoning_content": "..."}],  # assistant messages only (vLLM's field)
     "tools": [...], "parallel_tool_calls": true,
     "chat_template_kwargs": {"enable_thinking": false}}  # template variables (vLLM's field)

Preference line (`format == "preference"`)::

    {"input": {"messages": [...], "tools": [...]},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

Reinforcement line (`format == "reinforcement"`, the prompt of a reinforcement job)::

    {"messages": [..., {"role": "user" | "developer", "content": "..."}],
     "tools": [...], "reference_answer": "...", ...}  # any other field: `{{item.field}}`

A `messages` line whose last message is a user or developer message is a reinforcement
line (the model answers it when sampled); any other `messages` line is a chat line.

Blank lines are skipped; a UTF-8 byte-order mark before the first line is ignored. Every
line of one file must have the same format. What makes each message of a line valid, in
every format, is `contracts.dataset_messages`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from contracts.dataset_messages import messages_problem, tools_problem

try:
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover - the SDK works without orjson, only slower
    _loads = json.loads

Format = Literal["chat", "preference", "reinforcement"]
MAX_REPORTED = 5
CHUNK = 1 << 20
MAX_LINE_BYTES = 32 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LineError:
    """A bad line (`line` counts from 1) or, with `line=None`, a problem of the whole file."""

    line: int | None
    reason: str

    def __str__(self) -> str:
        return self.reason if self.line is None else f"line {self.line}: {self.reason}"


@dataclass
class Report:
    """What checking a whole file found: its format, example count and the first errors."""

    format: Format | None = None
    examples: int = 0
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def bad_lines(self) -> list[int]:
        return [e.line for e in self.errors if e.line is not None]

    def message(self) -> str:
        """One sentence for a 400: the first bad lines and why."""
        shown = "; ".join(str(e) for e in self.errors)
        more = self.error_count - len(self.errors)
        tail = f" (and {more} more bad line{'s' if more > 1 else ''})" if more > 0 else ""
        return f"Invalid file format for fine-tuning: {shown}{tail}."


# --- one example -----------------------------------------------------------------------


def chat_problem(example: dict[str, Any]) -> str | None:
    """Why a chat example is invalid, or `None`."""
    messages = example.get("messages")
    problem = messages_problem(messages, "messages") or tools_problem(example, "the example")
    if problem:
        return problem
    kwargs = example.get("chat_template_kwargs")
    if kwargs is not None and not (
        isinstance(kwargs, dict) and all(k.isidentifier() for k in kwargs)
    ):
        return "bad chat_template_kwargs: must be an object of template variable names"
    assistants = [m for m in messages if m["role"] == "assistant"]  # type: ignore[union-attr]
    if not assistants:
        return "no assistant message: a chat example needs at least one to learn from"
    if all(m.get("weight", 1) == 0 for m in assistants):
        return "no assistant message to train on: every assistant message has weight 0"
    return None


def _output_problem(output: Any, where: str) -> str | None:
    if output is None:
        return f"missing `{where}`"
    problem = messages_problem(output, where)
    if problem:
        return problem
    for i, msg in enumerate(output):
        if msg["role"] != "assistant":
            return f"{where}[{i}] must be an assistant message, not {msg['role']!r}"
    return None


def preference_problem(example: dict[str, Any]) -> str | None:
    """Why a preference example is invalid, or `None`."""
    inp = example.get("input")
    if not isinstance(inp, dict):
        return "missing `input`: a preference example needs `input.messages`"
    return (
        messages_problem(inp.get("messages"), "input.messages")
        or tools_problem(inp, "input")
        or _output_problem(example.get("preferred_output"), "preferred_output")
        or _output_problem(example.get("non_preferred_output"), "non_preferred_output")
    )


def reinforcement_problem(example: dict[str, Any]) -> str | None:
    """Why a reinforcement example (a prompt and the fields its grader reads) is invalid."""
    messages = example.get("messages")
    problem = messages_problem(messages, "messages") or tools_problem(example, "the example")
    if problem:
        return problem
    if messages[-1]["role"] not in _PROMPT_ROLES:  # type: ignore[index]
        return "the last message must be a user or developer message: the model answers it"
    return None


_PROMPT_ROLES = frozenset({"user", "developer"})


def _ends_with_prompt(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[-1], dict)
        and messages[-1].get("role") in _PROMPT_ROLES
    )


def example_format(example: Any) -> Format | None:
    """Which format an example claims to be, from its keys; `None` when neither."""
    if not isinstance(example, dict):
        return None
    if "messages" in example:
        return "reinforcement" if _ends_with_prompt(example["messages"]) else "chat"
    if "input" in example or "preferred_output" in example or "non_preferred_output" in example:
        return "preference"
    return None


def example_problem(example: Any) -> tuple[Format | None, str | None]:
    """`(format, None)` for a valid example, `(format or None, reason)` otherwise."""
    if not isinstance(example, dict):
        return None, f"not a JSON object (got {type(example).__name__})"
    fmt = example_format(example)
    if fmt is None:
        return None, (
            "no `messages`: expected a chat example (`messages`) or a preference example "
            "(`input`, `preferred_output`, `non_preferred_output`)"
        )
    problem = {
        "chat": chat_problem,
        "preference": preference_problem,
        "reinforcement": reinforcement_problem,
    }[fmt]
    return fmt, problem(example)


def _plain_chat(example: Any) -> bool:
    """Fast path for the common line: only `messages`, each only a role and string content.

    `True` means valid; `False` means "look closer" (the full check gives the reason).
    """
    if type(example) is not dict or len(example) != 1:
        return False
    messages = example.get("messages")
    if type(messages) is not list or not messages:
        return False
    has_assistant = False
    for msg in messages:
        if type(msg) is not dict or len(msg) != 2 or type(msg.get("content")) is not str:
            return False
        role = msg.get("role")
        if role == "assistant":
            has_assistant = True
        elif role not in _PLAIN_ROLES:
            return False
    return has_assistant


_PLAIN_ROLES = frozenset({"system", "developer", "user"})


def parse_line(line: bytes) -> tuple[Format | None, Any, str | None]:
    """Decode and check one line: `(format, example, reason)`; reason is `None` when valid."""
    try:
        example = _loads(line)
    except ValueError as e:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as u:
            return None, None, f"not UTF-8 (byte {u.start} of the line)"
        detail = str(e).split(":", 1)[0]
        return None, None, f"invalid JSON ({detail})"
    if _plain_chat(example):
        return "chat", example, None
    fmt, reason = example_problem(example)
    return fmt, example, reason


# --- a whole file, streamed ------------------------------------------------------------


class Checker:
    """Checks a file fed in chunks of any size; memory holds one line at most.

    >>> checker = Checker()
    >>> for chunk in chunks: checker.feed(chunk)
    >>> report = checker.finish()
    """

    def __init__(self, max_reported: int = MAX_REPORTED) -> None:
        self.report = Report()
        self._max = max_reported
        self._tail = b""
        self._line_no = 0
        self._first_line_of_format = 0
        self._started = False
        self._skipping = False

    def feed(self, chunk: bytes) -> None:
        if self._skipping:  # the rest of a line too long to check
            end = chunk.find(b"\n")
            if end < 0:
                return
            chunk, self._skipping = chunk[end + 1 :], False
        if not chunk:
            return
        data = self._tail + chunk if self._tail else chunk
        if not self._started:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._tail = data
                return
            self._started = True
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        lines = data.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            self._check(line)
        if len(self._tail) > MAX_LINE_BYTES:
            self._line_no += 1
            self._error(self._line_no, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
            self._tail, self._skipping = b"", True

    def finish(self) -> Report:
        if self._tail:
            self._check(self._tail)
            self._tail = b""
        report = self.report
        if report.examples == 0 and report.error_count == 0:
            self._error(None, "empty file: no examples")
        return report

    def _error(self, line: int | None, reason: str) -> None:
        self.report.error_count += 1
        if len(self.report.errors) < self._max:
            self.report.errors.append(LineError(line, reason))

    def _check(self, line: bytes) -> None:
        self._line_no += 1
        if not line or line.isspace():
            return
        fmt, _, reason = parse_line(line)
        report = self.report
        if fmt is not None and reason is None:
            if report.format is None:
                report.format = fmt
                self._first_line_of_format = self._line_no
            elif fmt != report.format:
                reason = (
                    f"mixed formats: this line is a {fmt} example but line "
                    f"{self._first_line_of_format} is a {report.format} example"
                )
        if reason is None:
            report.examples += 1
        else:
            self._error(self._line_no, reason)


def check_chunks(chunks: Iterable[bytes], max_reported: int = MAX_REPORTED) -> Report:
    checker = Checker(max_reported)
    for chunk in chunks:
        checker.feed(chunk)
    return checker.finish()


def check_bytes(data: bytes, max_reported: int = MAX_REPORTED) -> Report:
    return check_chunks([data], max_reported)


def check_file(path: str | Path, max_reported: int = MAX_REPORTED) -> Report:
    """Check a JSONL file on disk, reading it in 1 MiB chunks."""
    with open(path, "rb") as f:
        return check_chunks(iter(lambda: f.read(CHUNK), b""), max_reported)
