"""The answers another system gave (a job's `metadata.source_answers_file`), read for its
evaluation without trusting the file: streamed line by line, at most `max_bytes` of it, each
line at most `MAX_LINE_BYTES`, and only the answers of the examples evaluated kept (each cut
to `MAX_ANSWER_CHARS`). So a tenant's file of any size or shape costs the scheduler a few
lines of memory; one over the caps is reported as the source's error, not read on."""

from __future__ import annotations

import json
from collections.abc import Collection

from contracts.store import ObjectStore, numbered_lines

MAX_LINE_BYTES = 1024 * 1024
MAX_ANSWER_CHARS = 32 * 1024


class SourceAnswersTooLarge(ValueError):
    """The file passes `eval_source_answers_max_bytes`."""


def read_source_answers(
    store: ObjectStore, key: str, wanted: Collection[int], max_bytes: int
) -> dict[int, str]:
    """`{index: answer}` of the JSONL lines `{"index": i, "answer": str}` whose index is in
    `wanted`. Raises `ValueError` (or `KeyError`, `TypeError`) for a line that is not one,
    `SourceAnswersTooLarge` past `max_bytes`, and `ObjectNotFound` for a missing file."""
    wanted = set(wanted)
    given: dict[int, str] = {}
    read = 0
    for number, line in numbered_lines(store, key, max_line=MAX_LINE_BYTES):
        read += len(line) + 1
        if read > max_bytes:
            raise SourceAnswersTooLarge(
                f"more than {max_bytes} bytes (WHETSTONE_EVAL_SOURCE_ANSWERS_MAX_BYTES); "
                f"read up to line {number}"
            )
        if not line.strip():
            continue
        item = json.loads(line)
        index = int(item["index"])
        if index in wanted:
            given[index] = str(item["answer"])[:MAX_ANSWER_CHARS]
    return given
