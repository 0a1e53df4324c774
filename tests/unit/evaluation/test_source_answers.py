"""A source model's answers file as the service reads it: answers by validation index or by
training line, and the training lines a `{"line": n}` file has the job hold out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.local_store import LocalStore
from service.evaluation.source_answers import (
    SourceAnswersTooLarge,
    answered_lines,
    read_source_answers,
)

MAX = 1024 * 1024


def _store(tmp_path: Path, items: list[Any]) -> LocalStore:
    store = LocalStore(tmp_path)
    store.put_bytes("answers", "".join(json.dumps(i) + "\n" for i in items).encode())
    return store


def test_held_out_lines_are_those_answered_within_the_file_and_the_cap(tmp_path: Path) -> None:
    items = [{"line": n, "answer": f"a{n}"} for n in (9, 3, 3, 70, 0, 5, 7)]
    store = _store(tmp_path, items)
    assert answered_lines(store, "answers", lines=60, cap=50, max_bytes=MAX) == [3, 5, 7, 9]
    assert answered_lines(store, "answers", lines=60, cap=2, max_bytes=MAX) == [3, 5]
    every = _store(tmp_path, [{"line": n, "answer": "a"} for n in (1, 2, 3)])
    # never every line of the file: one is left to train on
    assert answered_lines(every, "answers", lines=3, cap=50, max_bytes=MAX) == [1, 2]


def test_a_validation_answers_file_names_no_training_lines(tmp_path: Path) -> None:
    store = _store(tmp_path, [{"index": 0, "answer": "a"}, {"index": 1, "answer": "b"}])
    assert answered_lines(store, "answers", lines=60, cap=50, max_bytes=MAX) == []


def test_answers_are_read_by_index_or_by_line(tmp_path: Path) -> None:
    store = _store(tmp_path, [{"line": 4, "answer": "four"}, {"line": 8, "answer": "eight"}])
    assert read_source_answers(store, "answers", [8, 5], MAX, by="line") == {8: "eight"}
    with pytest.raises(KeyError):
        read_source_answers(store, "answers", [0], MAX)  # a file of the other shape
    with pytest.raises(SourceAnswersTooLarge):
        answered_lines(store, "answers", lines=60, cap=50, max_bytes=10)
