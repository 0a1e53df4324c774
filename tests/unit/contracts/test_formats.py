"""The dataset line rules (`contracts.formats`) on the malformed corpus and on good files."""

from __future__ import annotations

import pytest

from contracts.formats import Checker, check_bytes
from tests.corpus.malformed import CASES, GOOD_FILES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_file_is_refused_with_lines_and_reason(case: Case) -> None:
    report = check_bytes(case.data)
    assert not report.ok
    assert tuple(report.bad_lines) == case.lines
    assert all(case.reason in e.reason for e in report.errors), report.errors


@pytest.mark.parametrize("name,data", GOOD_FILES, ids=[n for n, _ in GOOD_FILES])
def test_good_file_is_accepted(name: str, data: bytes) -> None:
    report = check_bytes(data)
    assert report.ok, report.errors
    assert report.format == ("preference" if name == "preference" else "chat")
    assert report.examples >= 1


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES[:12], ids=[c.name for c in CASES[:12]])
def test_chunk_boundaries_do_not_change_the_verdict(case: Case) -> None:
    checker = Checker()
    for i in range(len(case.data)):
        checker.feed(case.data[i : i + 1])
    report = checker.finish()
    assert tuple(report.bad_lines) == case.lines


def test_message_counts_lines_beyond_the_first_five() -> None:
    data = b"{bad\n" * 9
    report = check_bytes(data)
    assert report.error_count == 9
    message = report.message()
    assert "line 1:" in message and "line 5:" in message and "line 6:" not in message
    assert "and 4 more bad lines" in message


def test_overlong_line_is_refused_without_holding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("contracts.formats.MAX_LINE_BYTES", 1024)
    checker = Checker()
    checker.feed(b'{"messages": "' + b"x" * 4000)
    checker.feed(b"x" * 4000 + b'"}\n')
    report = checker.finish()
    assert report.bad_lines == [1] and "longer than" in report.errors[0].reason
