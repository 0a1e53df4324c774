"""`whetstone record` against the OpenAI stand-in, as a person runs it: the answers make a
training file Whetstone accepts, a rate limit and a dropped connection are waited out, and a
crash or Ctrl-C costs nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import formats

from .openai_source import KEY, OpenAISource, openai_source

ROOT = Path(__file__).resolve().parents[3]
MODEL = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy"
SYSTEM = {"role": "system", "content": "You are the support desk."}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def said(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


PROMPTS: list[dict[str, Any]] = [
    {"messages": [SYSTEM, user("q1"), said("old answer 1")]},
    {"messages": [user("q2")]},  # a bare prompt
    {"messages": [user("q3"), said("a3"), user("q3 again"), said("old")]},  # multi-turn
    {"messages": [user("q4"), said("old")], "tools": TOOLS},
    {"messages": [user("q1"), said("x")]},  # the same prompt twice: asked twice
    {"messages": [user("q1"), said("y")]},
]


@pytest.fixture()
def source() -> Iterator[OpenAISource]:
    with openai_source(OpenAISource(models={MODEL})) as served:
        yield served


def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS) + "\n")
    return path


# The CLI as a terminal starts it, Ctrl-C raising KeyboardInterrupt: a test run in a shell's
# background (CI under nohup, `make test &`) would otherwise hand it an ignored SIGINT.
AT_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "runpy.run_module('clients.cli.main', run_name='__main__')")  # fmt: skip


def command(source: OpenAISource, prompts: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", AT_A_TERMINAL, "record", "--source-base-url", source.url,
            "--source-api-key", KEY, "--model", MODEL, "--prompts", str(prompts), "-o", str(out),
            *args]  # fmt: skip


def record(source: OpenAISource, prompts: Path, out: Path, *args: str) -> Any:
    """The command's run; wide columns, so that an error naming a long temporary path is not
    wrapped inside its box."""
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(command(source, prompts, out, *args), capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env)  # fmt: skip


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def expected(prompt: dict[str, Any]) -> dict[str, Any]:
    messages = prompt["messages"]
    if messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    last_user = [m for m in messages if m["role"] == "user"][-1]["content"]
    line = {"messages": [*messages, said(f"source says: {last_user}")]}
    return {**line, **({"tools": prompt["tools"]} if "tools" in prompt else {})}


def key(line: dict[str, Any]) -> str:
    return json.dumps(line, sort_keys=True)


def test_answers_become_a_training_file_through_a_rate_limit_and_a_drop(
    source: OpenAISource, tmp_path: Path
) -> None:
    prompts, out = prompts_file(tmp_path), tmp_path / "answers.jsonl"
    counted = record(source, prompts, out, "--dry-run", "--json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)["to_ask"] == 6 and source.chat_requests == []
    assert json.loads(counted.stdout)["prompt_tokens"] > 0 and not out.exists()

    source.rate_limited, source.drop_chat = 2, {3}
    result = record(source, prompts, out, "--concurrency", "3", "--temperature", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert source.rate_limited_sent == 2 and source.chats_seen == 7  # one asked again
    summary = {"answered": 6, "answered_before": 0, "failed": [], "stopped": False,
               "output": str(out), "valid": True}  # fmt: skip
    assert json.loads(result.stdout) == summary
    assert sorted(map(key, lines(out))) == sorted(key(expected(p)) for p in PROMPTS)
    report = formats.check_file(out)
    assert report.ok and report.format == "chat" and report.examples == 6
    assert {r["temperature"] for r in source.chat_requests} == {0}
    assert next(r for r in source.chat_requests if "tools" in r)["tools"] == TOOLS

    again = record(source, prompts, out, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["answered"] == 0
    assert len(source.chat_requests) == 6


def test_a_rerun_after_a_crash_asks_only_what_is_missing(
    source: OpenAISource, tmp_path: Path
) -> None:
    prompts, out = prompts_file(tmp_path), tmp_path / "answers.jsonl"
    # What a crash leaves: two answers written, the third cut off mid-line.
    done = [expected(PROMPTS[1]), expected(PROMPTS[4])]
    out.write_text("".join(json.dumps(line) + "\n" for line in done) + '{"messages": [{"ro')
    result = record(source, prompts, out, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["answered"] == 4
    asked = [r["messages"] for r in source.chat_requests]
    assert [user("q2")] not in asked and asked.count([user("q1")]) == 1
    assert sorted(map(key, lines(out))) == sorted(key(expected(p)) for p in PROMPTS)
    assert formats.check_file(out).ok


def test_ctrl_c_keeps_the_answers_in_flight_and_a_rerun_finishes(
    source: OpenAISource, tmp_path: Path
) -> None:
    prompts, out = prompts_file(tmp_path), tmp_path / "answers.jsonl"
    source.hold_from = 3  # the third request waits until the test lets it answer
    proc = subprocess.Popen(command(source, prompts, out, "--concurrency", "1"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while source.chats_seen < 3:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        source.release.set()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    assert len(lines(out)) == 3 == len(source.chat_requests)  # the one in flight was kept

    source.hold_from = None
    rerun = record(source, prompts, out, "--json")
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["answered"] == 3
    assert len(source.chat_requests) == 6
    assert sorted(map(key, lines(out))) == sorted(key(expected(p)) for p in PROMPTS)


def test_a_bad_prompts_file_or_a_foreign_output_is_refused_before_anything_is_sent(
    source: OpenAISource, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PROMPTS[0]) + "\n{oops\n")
    refused = record(source, bad, tmp_path / "out.jsonl")
    assert refused.returncode == 2 and "line 2: invalid JSON" in refused.stderr
    for text in ("my notes\n", "my notes"):  # with or without its last newline
        foreign = tmp_path / "notes.txt"
        foreign.write_text(text)
        refused = record(source, prompts_file(tmp_path), foreign)
        assert refused.returncode == 2 and "line 1 is not a chat line" in refused.stderr
        assert foreign.read_text() == text and source.chat_requests == []
