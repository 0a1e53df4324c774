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
from pathlib import Path
from typing import Any

import pytest

from tests.unit.service.test_chat import ANSWER, StandIn, reply, vllm  # noqa: F401

from .openai_source import KEY, OpenAISource, openai_source
from .test_leave_openai import OLD_NAME, TRAIN, Whetstone, whetstone  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
SECTION = "## Moving from OpenAI fine-tuning"
SOURCE_URL = "https://api.openai.com/v1"
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
    """What a run's output must share with the README's: ids, dates, the progress bar's
    line and all spacing aside."""
    text = re.sub(r"\b(ftjob|file)-[A-Za-z0-9]{8,}", r"\1-ID", text)
    text = re.sub(r"(ft:whetstone-tiny:acme:support:)[A-Za-z0-9]{8}", r"\1ID", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "DATE", text)
    text = re.sub(r"recording [━ ]+\S+ \S+", "", text)
    return " ".join(text.split())


def test_the_runbook_runs_as_written_and_prints_what_it_shows(
    whetstone: Whetstone, vllm: StandIn, tmp_path: Path
) -> None:
    src = OpenAISource()
    old = src.add_file("file-Q9wE3rT6yU1iO4pA7sD0fG2h", "legacy.jsonl", TRAIN)
    src.add_job("ftjob-Q1vR7bX2nLk8sT4wYp0zHc3d", old, model="gpt-3.5-turbo-0125",
                fine_tuned_model="ft:gpt-3.5-turbo-0125:acme::Legacy01")  # fmt: skip
    train = src.add_file("file-2Vt8Lq1xWk9PbZr4YhN6aC", "support.jsonl", TRAIN)
    src.add_job("ftjob-7HkN2pQ4sXv9LmB1cR8tWy6e", train, fine_tuned_model=OLD_NAME)

    def answer(handler: Any) -> None:  # the tuned model knows the capital
        asked = json.loads(vllm.seen[-1].body)["model"]
        message = {"role": "assistant", "content": "Ostrel."}
        reply(200, {**ANSWER, "model": asked, "choices": [{"index": 0, "message": message}]})(
            handler
        )

    vllm.answer = answer
    key = whetstone.key("acme")
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.py").write_text(app_code())
    (work / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    env = {**whetstone.env, "WHETSTONE_API_KEY": key, "OPENAI_API_KEY": KEY,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    exports: list[str] = []
    transcript: list[str] = []
    with openai_source(src):
        for command, shown in session():
            transcript.append(command)
            if command.startswith("# "):
                (job,) = [j for j in json.loads(cli(env, work, "jobs list --json"))]
                whetstone.succeed(job["id"])
                continue
            line = command[2:].replace(SOURCE_URL, src.url)
            if line.startswith("export "):
                exports.append(line)
            run = subprocess.run(
                ["bash", "-c", "; ".join([*exports, line])], cwd=work, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
            )  # fmt: skip
            out = run.stdout.replace(src.url, SOURCE_URL).rstrip("\n")
            transcript.extend([out] if out else [])
            assert run.returncode == 0, (command, out)
            if not os.environ.get("WHETSTONE_RUNBOOK_OUT"):
                assert shape(out) == shape(shown), command
    if path := os.environ.get("WHETSTONE_RUNBOOK_OUT"):
        Path(path).write_text("\n".join(transcript) + "\n")
        pytest.skip(f"session written to {path}; compare nothing")


def cli(env: dict[str, str], cwd: Path, args: str) -> str:
    command = [sys.executable, "-m", "clients.cli.main", *args.split()]
    env = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=120).stdout  # fmt: skip
