"""The answers another system gave (a job's `metadata.source_answers_file`), read for its
evaluation without trusting the file: streamed line by line, at most `max_bytes` of it, each
line at most `MAX_LINE_BYTES`, and only the answers of the examples evaluated kept (each cut
to `MAX_ANSWER_CHARS`). So a tenant's file of any size or shape costs the scheduler a few
lines of memory; one over the caps is reported as the source's error, not read on.

Two shapes, one per kind of evaluation: `{"index": i, "answer": str}` for a validation file
(`i` the example's position among its non-blank lines, from 0), and `{"line": n, "answer":
str}` for training lines held out (`n` the training file's line, from 1). A file of the
second shape also says which lines to hold out (`answered_lines`, read when the job
starts)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Literal

from contracts.store import ObjectStore, numbered_lines

MAX_LINE_BYTES = 1024 * 1024
MAX_ANSWER_CHARS = 32 * 1024
Key = Literal["index", "line"]


class SourceAnswersTooLarge(ValueError):
    """The file passes `eval_source_answers_max_bytes`."""


def _items(store: ObjectStore, key: str, max_bytes: int) -> Iterator[dict[str, object]]:
    read = 0
    for number, line in numbered_lines(store, key, max_line=MAX_LINE_BYTES):
        read += len(line) + 1
        if read > max_bytes:
            raise SourceAnswersTooLarge(
                f"more than {max_bytes} bytes (WHETSTONE_EVAL_SOURCE_ANSWERS_MAX_BYTES); "
                f"read up to line {number}"
            )
        if line.strip():
            item = json.loads(line)
            if not isinstance(item, dict):
                raise TypeError(f"line {number} is not a JSON object")
            yield item


def read_source_answers(
    store: ObjectStore, key: str, wanted: Collection[int], max_bytes: int, by: Key = "index"
) -> dict[int, str]:
    """`{index: answer}` of the JSONL lines `{"index": i, "answer": str}` (`by="line"`:
    `{line: answer}` of `{"line": n, "answer": str}`) whose number is in `wanted`. Raises
    `ValueError` (or `KeyError`, `TypeError`) for a line that is not one,
    `SourceAnswersTooLarge` past `max_bytes`, and `ObjectNotFound` for a missing file."""
    wanted = set(wanted)
    given: dict[int, str] = {}
    for item in _items(store, key, max_bytes):
        number = int(item[by])  # type: ignore[call-overload]
        if number in wanted:
            given[number] = str(item["answer"])[:MAX_ANSWER_CHARS]
    return given


def answered_lines(store: ObjectStore, key: str, lines: int, cap: int, max_bytes: int) -> list[int]:
    """The training lines (in [1, `lines`]) a `{"line": n, ...}` answers file answers, sorted,
    the first `cap` of them and never every line of the file (one is left to train on); none
    for a file of the other shape. Raises as `read_source_answers`."""
    found: set[int] = set()
    for item in _items(store, key, max_bytes):
        if "line" not in item:
            return []
        number = int(item["line"])  # type: ignore[call-overload]
        if 1 <= number <= lines:
            found.add(number)
    return sorted(found)[: min(cap, lines - 1)]
