"""`whetstone migrate --evaluate`: the source's fine-tuned model answers its job's validation
prompts, so that the model trained here can later be compared with it; a job without a
validation file, the prompts of the training lines held out for the evaluation.

Each line's prompt is every message before its last assistant message (a preference line:
its `input.messages`), with the line's `tools` when it has some; it is sent greedy
(`temperature: 0`) to the source model. The answers are JSONL, one `{"index": i, "answer":
"..."}` per validation prompt, `i` the line's position among the file's non-blank lines
(from 0), or one `{"line": n, "answer": "..."}` per held-out training line, `n` its line
number (from 1). The held-out lines are those `contracts.holdout` picks with the service's
default settings and the job's seed; the service holds out the lines an answers file
names, whatever its own settings, so both sides ask the same prompts. A line without a
prompt (no assistant message after a first message) has no answer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.sdk import APIStatusError, Whetstone, WhetstoneError
from contracts.holdout import MIN_LINES, held_out_lines

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

    def numbered(raw: Iterator[bytes]) -> Iterator[tuple[str, int, bytes]]:
        return (("index", i, line) for i, line in enumerate(r for r in raw if r.strip()))

    return _replay(source, model, lambda: source.files.iter_content(validation_file), numbered)


def replay_held_out(
    source: Whetstone, model: str, files: Whetstone, training_file: str, seed: int
) -> Replay:
    """Ask `model` the prompts of the training lines held out for the evaluation (read from
    `files`, which holds `training_file`: the destination's copy); a file too short to hold
    any out (`contracts.holdout.MIN_LINES`) has no answers and says so."""
    with closing(files.files.iter_content(training_file)) as chunks:
        count = sum(1 for line in lines(chunks) if line.strip())
    held = set(held_out_lines(count, seed))
    if not held:
        return Replay(None, problem=f"the training file has {count} lines, fewer than the "
                      f"{MIN_LINES} a held-out evaluation needs")  # fmt: skip

    def numbered(raw: Iterator[bytes]) -> Iterator[tuple[str, int, bytes]]:
        return (("line", n, line) for n, line in enumerate(raw, 1) if n in held)

    return _replay(source, model, lambda: files.files.iter_content(training_file), numbered)


Numbering = Callable[[Iterator[bytes]], Iterator[tuple[str, int, bytes]]]


def _replay(
    source: Whetstone, model: str, open_file: Callable[[], Any], numbered: Numbering
) -> Replay:
    """The answers of `model` to the prompts of the lines `numbered` picks, each written as
    `{key: number, "answer": ...}` to a temporary file."""
    fd, name = tempfile.mkstemp(prefix="whetstone-source-answers-", suffix=".jsonl")
    path, count = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as out, closing(open_file()) as chunks:
            for key, number, raw in numbered(lines(chunks)):
                prompt = prompt_of(json.loads(raw))
                if prompt is None:
                    continue
                answer = _ask(source, model, *prompt)
                out.write(json.dumps({key: number, "answer": answer}).encode() + b"\n")
                count += 1
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
