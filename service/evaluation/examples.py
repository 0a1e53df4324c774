"""The examples an evaluation asks each model: from the job's validation file, or the
training lines it held out. An example's prompt is every message before its last assistant
message, and its reference that message's text."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from contracts.formats import parse_line
from contracts.store import ObjectStore, numbered_lines


@dataclass(frozen=True)
class Example:
    index: int  # 0-based, among the examples of the file (or of the held-out lines)
    line: int  # 1-based line of the file
    prompt: list[dict[str, Any]]
    reference: str


def text_of(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        texts = [p for p in parts if isinstance(p, str)]
        if texts and len(texts) == len(content):
            return "".join(texts)
    return None


def split_example(example: dict[str, Any]) -> tuple[list[dict[str, Any]], str] | None:
    """(prompt messages, reference) of a chat example; None without an assistant text to
    compare with, or without a message before it."""
    messages = example.get("messages")
    if not isinstance(messages, list):
        return None
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=0)
    reference = text_of(messages[last].get("content")) if last else None
    if reference is None:
        return None
    prompt = []
    for message in messages[:last]:
        text = text_of(message.get("content"))
        if text is None:
            return None
        prompt.append({"role": message["role"], "content": text})
    return prompt, reference


def read_examples(
    store: ObjectStore, key: str, limit: int, only_lines: Collection[int] | None = None
) -> list[Example]:
    """The first `limit` examples of a stored chat JSONL file (of the lines `only_lines`
    when given); lines that are no chat example with an assistant answer are passed over."""
    wanted = set(only_lines) if only_lines is not None else None
    found: list[Example] = []
    index = 0
    for number, line in numbered_lines(store, key):
        if len(found) >= limit:
            break
        if not line.strip() or (wanted is not None and number not in wanted):
            continue
        fmt, example, reason = parse_line(line)
        parts = split_example(example) if fmt == "chat" and reason is None else None
        if parts is not None:
            found.append(Example(index, number, parts[0], parts[1]))
        index += 1
    return found


def prompt_text(prompt: list[dict[str, Any]]) -> str:
    """The prompt as one readable string (the report's samples)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
