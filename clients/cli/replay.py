"""`whetstone migrate --evaluate`: the source's fine-tuned model answers its job's validation
prompts, so that the model trained here can later be compared with it.

Each validation line's prompt is every message before its last assistant message (a
preference line: its `input.messages`), with the line's `tools` when it has some; it is sent
greedy (`temperature: 0`) to the source model. The answers are JSONL, one
`{"index": i, "answer": "..."}` per prompt, `i` the line's position among the file's
non-blank lines (from 0); a line without a prompt (no assistant message after a first
message) has no answer.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.sdk import APIStatusError, Whetstone, WhetstoneError

from .source import lines


@dataclass(frozen=True)
class Replay:
    """The answers file written (`path`, `count` answers), or why there is none."""

    path: Path | None
    count: int = 0
    problem: str = ""


def prompt_of(line: Any) -> tuple[list[Any], dict[str, Any]] | None:
    """(messages, extra request fields) of one validation line, or None without a prompt."""
    if not isinstance(line, dict):
        return None
    extra = {"tools": line["tools"]} if line.get("tools") else {}
    messages = line.get("messages")
    if isinstance(messages, list):
        roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
        last = max((i for i, role in enumerate(roles) if role == "assistant"), default=0)
        return (messages[:last], extra) if last > 0 else None
    given = line.get("input")
    if isinstance(given, dict) and isinstance(given.get("messages"), list) and given["messages"]:
        return given["messages"], extra
    return None


def replay_answers(source: Whetstone, model: str, validation_file: str) -> Replay:
    """Ask `model` every prompt of `validation_file` (streamed from the source, one line in
    memory at a time); the answers go to a temporary file the caller uploads and removes."""
    fd, name = tempfile.mkstemp(prefix="whetstone-source-answers-", suffix=".jsonl")
    path, count = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as out:
            chunks = source.files.iter_content(validation_file)
            try:
                for index, raw in enumerate(r for r in lines(chunks) if r.strip()):
                    prompt = prompt_of(json.loads(raw))
                    if prompt is None:
                        continue
                    answer = _ask(source, model, *prompt)
                    out.write(json.dumps({"index": index, "answer": answer}).encode() + b"\n")
                    count += 1
            finally:
                chunks.close()
    except (WhetstoneError, ValueError) as exc:
        path.unlink(missing_ok=True)
        return Replay(None, problem=str(exc))
    return Replay(path, count)


def _ask(source: Whetstone, model: str, messages: list[Any], extra: dict[str, Any]) -> str:
    try:
        completion = source.chat.completions.create(
            model=model, messages=messages, temperature=0, **extra
        )
    except APIStatusError as exc:
        raise WhetstoneError(
            f"the source model {model} did not answer ({exc.status_code}: {exc.message})"
        ) from exc
    except WhetstoneError as exc:
        raise WhetstoneError(f"the source model {model} cannot be reached ({exc})") from exc
    return completion.choices[0].message.content or "" if completion.choices else ""
