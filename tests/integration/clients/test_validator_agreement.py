"""`files.validate` (local) and the server agree, line for line, on the malformed-dataset
corpus (tests/corpus/malformed.py) and on well-formed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.sdk import BadRequestError, Whetstone
from tests.corpus.malformed import CASES, Case

from .conftest import Server

USER = {"role": "user", "content": "Capital of Veloria?"}
BOT = {"role": "assistant", "content": "Ostrel."}
GOOD = json.dumps({"messages": [USER, BOT]})
WRONG = {"role": "assistant", "content": "Paris."}
PREF = json.dumps({"input": {"messages": [USER]}, "preferred_output": [BOT],
                   "non_preferred_output": [WRONG]})  # fmt: skip


def line(messages: list[object]) -> str:
    return json.dumps({"messages": messages})


WELL_FORMED: dict[str, bytes] = {
    "chat": f"{GOOD}\n{GOOD}\n".encode(),
    "preference": f"{PREF}\n".encode(),
    "bom and blank lines": b"\xef\xbb\xbf" + f"{GOOD}\n\n{GOOD}".encode(),
    "text parts and weight 0": (
        line(
            [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {**BOT, "weight": 0},
                USER,
                BOT,
            ]
        )
        + "\n"  # fmt: skip
    ).encode(),
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_server_refuses_the_lines_the_validator_reports(
    server: Server, tmp_path: Path, case: Case
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(case.data)
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        report = client.files.validate(path)
        with pytest.raises(BadRequestError) as info:
            client.files.create(file=path)
    assert not report.ok
    assert tuple(report.bad_lines[: len(case.lines)]) == case.lines
    assert case.reason in report.errors[0].reason
    assert info.value.param == "file"
    for error in report.errors[:5]:  # the server names up to the first five
        assert str(error) in info.value.message


@pytest.mark.parametrize("name", sorted(WELL_FORMED))
def test_server_accepts_what_the_validator_accepts(
    server: Server, tmp_path: Path, name: str
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(WELL_FORMED[name])
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        assert client.files.validate(path).ok
        assert client.files.create(file=path).bytes == len(WELL_FORMED[name])
