"""The README's runbook ("Moving from OpenAI fine-tuning"): every command of its session run
as written, in order, by bash in a fresh folder, and what each prints compared with what the
README shows (ids, dates, column widths and line wrapping aside). The source is the OpenAI
stand-in (`openai_source`) with the README's ids at `https://api.openai.com/v1`'s place;
Whetstone runs in this process with a stand-in vLLM, and the README's `# ...` line is where
the new job's success is recorded, as the scheduler records it (no training here).

To refresh the README's session after a change of output, run this file with
`WHETSTONE_RUNBOOK_OUT=session.txt` and paste that file's text into the block."""

# ruff: noqa: F811  (the fixtures imported below are then named as arguments)

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.service.test_chat import ANSWER, StandIn, reply, vllm  # noqa: F401

from .openai_source import KEY, OpenAISource, openai_source
from .test_leave_openai import OLD_NAME, TRAIN, Whetstone, whetstone  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
SECTION = "## Moving from OpenAI fine-tuning"
SOURCE_URL = "https://api.openai.com/v1"
MIGRATED = "ftjob-7HkN2pQ4sXv9LmB1cR8tWy6e"  # the source job the session moves
PROMPTS = [
    {"messages": [{"role": "user", "content": "Capital of Veloria?"}]},
    {"messages": [{"role": "user", "content": "River of Ostrel?"}]},
    {"messages": [{"role": "user", "content": "Veloria's currency?"}]},
    {"messages": [{"role": "user", "content": "Who founded Ostrel?"}]},
]


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    return readme[start : readme.index("\n## ", start + len(SECTION))]


def session() -> list[tuple[str, str]]:
    """(command, the output shown) of each `$ ` line of the section's console block; a `# `
    line is a step of its own with no output."""
    (block,) = re.findall(r"```console\n(.*?)```", section(), re.S)
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith(("$ ", "# ")):
            steps.append((line, []))
        else:
            steps[-1][1].append(line)
    return [(command, "\n".join(out)) for command, out in steps]


def app_code() -> str:
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section(), re.S) if "OpenAI()" in b]
    return code


def shape(text: str) -> str:
    """What a run's output must share with the README's: ids, dates, the project of the new
    model's name, the progress bar's line and all spacing aside."""
    text = re.sub(r"\b(ftjob|file)-[A-Za-z0-9]{8,}", r"\1-ID", text)
    text = re.sub(r"(ft:whetstone-tiny:)[\w-]+(:support:)[A-Za-z0-9]{8}", r"\1P\2ID", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "DATE", text)
    text = re.sub(r"recording [━ ]+\S+ \S+", "", text)
    return " ".join(text.split())


def runbook_source() -> OpenAISource:
    """The OpenAI account of the README's session: its two jobs, with the README's ids."""
    src = OpenAISource()
    old = src.add_file("file-Q9wE3rT6yU1iO4pA7sD0fG2h", "legacy.jsonl", TRAIN)
    src.add_job("ftjob-Q1vR7bX2nLk8sT4wYp0zHc3d", old, model="gpt-3.5-turbo-0125",
                fine_tuned_model="ft:gpt-3.5-turbo-0125:acme::Legacy01")  # fmt: skip
    train = src.add_file("file-2Vt8Lq1xWk9PbZr4YhN6aC", "support.jsonl", TRAIN)
    src.add_job(MIGRATED, train, fine_tuned_model=OLD_NAME)
    return src


@dataclass
class Step:
    command: str
    shown: str  # in the README
    printed: str  # by this run


def play(
    base_url: str, key: str, env: dict[str, str], work: Path, trains: Callable[[str], None]
) -> list[Step]:
    """The session's commands in order, by bash in `work` (app.py and prompts.jsonl written
    there first), against the Whetstone at `base_url` and the README's OpenAI account (a
    stand-in run here); at the `# ...` line, `trains(new job id)` returns once it succeeded.
    Also run against `whetstone up` by tests/e2e/test_up.py."""
    src = runbook_source()
    work.mkdir()
    (work / "app.py").write_text(app_code())
    (work / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # whetstone, python
    env = {**env, "WHETSTONE_BASE_URL": base_url, "WHETSTONE_API_KEY": key, "COLUMNS": "250",
           "OPENAI_API_KEY": KEY, "PATH": path}  # fmt: skip
    exports: list[str] = []
    steps: list[Step] = []
    with openai_source(src):
        for command, shown in session():
            if command.startswith("# "):
                listed = subprocess.run(
                    ["whetstone", "jobs", "list", "--json"], env=env, cwd=work,
                    capture_output=True, text=True, check=True, timeout=120,
                )  # fmt: skip
                (job,) = [j for j in json.loads(listed.stdout)
                          if (j["metadata"] or {}).get("migrated_from") == MIGRATED]  # fmt: skip
                trains(job["id"])
                steps.append(Step(command, shown, ""))
                continue
            line = command[2:].replace(SOURCE_URL, src.url)
            if line.startswith("export "):
                exports.append(line)
            run = subprocess.run(
                ["bash", "-c", "; ".join([*exports, line])], cwd=work, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
            )  # fmt: skip
            printed = run.stdout.replace(src.url, SOURCE_URL).rstrip("\n")
            assert run.returncode == 0, (command, printed)
            steps.append(Step(command, shown, printed))
    return steps


def test_the_runbook_runs_as_written_and_prints_what_it_shows(
    whetstone: Whetstone, vllm: StandIn, tmp_path: Path
) -> None:
    def answer(handler: Any) -> None:  # the tuned model knows the capital
        asked = json.loads(vllm.seen[-1].body)["model"]
        message = {"role": "assistant", "content": "Ostrel."}
        reply(200, {**ANSWER, "model": asked, "choices": [{"index": 0, "message": message}]})(
            handler
        )

    def trains(job_id: str) -> None:
        whetstone.succeed(job_id)

    vllm.answer = answer
    steps = play(whetstone.url, whetstone.key("acme"), whetstone.env, tmp_path / "work", trains)
    if path := os.environ.get("WHETSTONE_RUNBOOK_OUT"):
        lines = [line for s in steps for line in (s.command, s.printed) if line]
        Path(path).write_text("\n".join(lines) + "\n")
        pytest.skip(f"session written to {path}; compare nothing")
    for step in steps:
        assert shape(step.printed) == shape(step.shown), step.command
