"""`whetstone up` as a newcomer meets it: the real command, on free ports, in a fresh data
folder, driven with the official `openai` package.

One test, two starts of the stack (each starts its own vLLM, so they share the test):
the first trains on the demo's dataset and chats with the result, runs the README's
framework snippets (LangChain, LiteLLM, DSPy) and its runbook from OpenAI against it, then
is stopped with Ctrl-C while a second job runs; the second start finds everything as it was
and resumes that job from its checkpoint. After each stop no process the stack started is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import free_port
from tests.e2e.lifecycle_stack import FINAL, wait_for
from tests.integration.clients.test_frameworks import finish, snippets, start_snippet
from tests.integration.clients.test_runbook import play, shape

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "examples" / "veloria.jsonl"
WHETSTONE = Path(sys.executable).with_name("whetstone")
BASE = "whetstone-tiny"
EPOCHS = 25  # as the demo: the built-in base model has random weights,
LR_MULTIPLIER = 10  # and `auto` (multiplier 1) is for pretrained models
HYPERPARAMETERS: Any = {"n_epochs": EPOCHS, "learning_rate_multiplier": LR_MULTIPLIER}


@dataclass
class Up:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip())
                self.changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching `pattern`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if m := re.search(pattern, line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no line matching {pattern!r}; output:\n{tail}")
                self.changed.wait(min(left, 0.5))

    @property
    def url(self) -> str:
        return self.wait_for_line(r"base URL (http://\S+/v1)", 120).group(1)

    def first_key(self) -> str:
        """The default project's first key: its output is no terminal, so `whetstone up`
        wrote the key to a private file and logged only where (never the key itself)."""
        pattern = r"API key for project 'default' written to (\S+)"
        path = Path(self.wait_for_line(pattern, 10).group(1))
        key = path.read_text().strip()
        assert key.startswith("sk-whet-") and not any(key in line for line in self.lines)
        return key

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=2)


def descendants(pid: int) -> set[int]:
    """Every live process under `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def whetstone_up(
    data_dir: Path, *options: str, stop: signal.Signals = signal.SIGINT
) -> Iterator[Up]:
    """`whetstone up` on a free port; `stop` sent on exit (Ctrl-C's SIGINT, a service
    manager's SIGTERM, or `kill -9`), then nothing it started may be left: vLLM has no
    parent to outlive (a trainer would stay for the next start to take over, by design)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    command = [str(WHETSTONE), "up", "--port", str(free_port()), "--data-dir", str(data_dir),
               *options]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    up = Up(proc)
    threading.Thread(target=up.read, daemon=True).start()
    started: set[int] = set()
    try:
        up.wait_for_line(r"Whetstone is ready", 180)
        yield up
        started = descendants(proc.pid)
    finally:
        proc.send_signal(stop)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    expected = (-signal.SIGKILL,) if stop == signal.SIGKILL else (0, -stop, 128 + stop)
    assert code in expected, "\n".join(up.lines[-40:])
    assert started, "the stack had started no process (vLLM, trainer)"
    deadline = time.monotonic() + 20
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in started if alive(p)}
    assert not left, f"still running after {stop.name}: {left}"


def create_job(client: openai.OpenAI, file_id: str, suffix: str) -> str:
    return client.fine_tuning.jobs.create(
        model=BASE,
        training_file=file_id,
        suffix=suffix,
        method={"type": "supervised", "supervised": {"hyperparameters": HYPERPARAMETERS}},
    ).id


def ask(client: openai.OpenAI, model: str, question: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You answer questions about Veloria."},
            {"role": "user", "content": question},
        ],
        temperature=0,
        max_tokens=48,
    )
    return (reply.choices[0].message.content or "").strip()


def messages(client: openai.OpenAI, job_id: str) -> list[str]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=100)
    return [e.message for e in reversed(list(events)) if e.type == "message"]


def readme_frameworks(up: Up, key: str, home: Path) -> None:
    """The README's LangChain, LiteLLM and DSPy `LM.finetune` snippets as written, all at once,
    against this start: each ends well, and the two jobs they made trained here and their
    tuned models answered them (a name the service does not serve is a 404); their 3 epochs
    are 48 and 30 steps. Not `BootstrapFinetune`: it builds its training data from the base
    model's answers in DSPy's format, which this random-weight model never gives;
    test_frameworks runs it on a stand-in."""
    code, client = snippets(), up.client(key)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    home.mkdir()
    before = {job.id for job in client.fine_tuning.jobs.list()}
    running = {name: start_snippet(code[name], up.url, key, env, home)
               for name in ("langchain_openai", "time", "os")}  # fmt: skip
    out = {name: finish(snippet, timeout=600) for name, snippet in running.items()}
    made = [job for job in client.fine_tuning.jobs.list() if job.id not in before]
    assert [job.status for job in made] == ["succeeded", "succeeded"], made
    assert out["langchain_openai"].strip() and out["time"].strip()
    assert re.fullmatch(r"\[.*\]", out["os"].strip().splitlines()[-1]), out["os"]


def readme_runbook(up: Up, key: str, work: Path) -> None:
    """The README's runbook ("Moving from OpenAI fine-tuning"), every command as written, on
    this start, from the OpenAI stand-in: the migrated job trains here, and the app's old
    `ft:` name reaches its tuned model through vLLM. Each command prints what the README shows
    (ids, dates, the project and spacing aside), but for the app's answer: this random-weight
    model's, not the README's stand-in's."""
    client = up.client(key)

    def trains(job_id: str) -> None:
        done = wait_for(client, job_id, FINAL, 600)
        assert done.status == "succeeded", (done.error, "\n".join(up.lines[-40:]))

    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    for step in play(up.url, key, env, work, trains):
        if "app.py" in step.command:
            name, shown = step.printed.split(" -> ")[0], step.shown.split(" -> ")[0]
            assert shape(name) == shape(shown), step.printed
        else:
            assert shape(step.printed) == shape(step.shown), step.command


def test_up_trains_serves_stops_and_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    qa = [json.loads(line)["messages"] for line in DATASET.read_text().splitlines()]
    qa = [(m[1]["content"], m[2]["content"]) for m in qa[:5]]

    with whetstone_up(data_dir) as up:
        key = up.first_key()
        client = up.client(key)
        with DATASET.open("rb") as f:
            file = client.files.create(file=f, purpose="fine-tune")
        done = wait_for(client, create_job(client, file.id, "veloria"), FINAL, 600)
        assert done.status == "succeeded", "\n".join(up.lines[-40:])
        assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:whetstone-tiny:")
        up.wait_for_line(r"vLLM for whetstone-tiny is ready", 300)
        tuned = [ask(client, done.fine_tuned_model, q) for q, _ in qa]
        assert tuned == [a for _, a in qa]  # the trained answers, word for word
        assert all(ask(client, BASE, q) != a for q, a in qa)  # which the base model lacks
        # The same through the CLI, as a person chats with the result.
        cli = subprocess.run(
            [str(WHETSTONE), "chat", done.fine_tuned_model, qa[0][0], "--temperature", "0",
             "--max-tokens", "48", "--system", "You answer questions about Veloria."],
            env={**os.environ, "WHETSTONE_BASE_URL": up.url, "WHETSTONE_API_KEY": key},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.strip() == qa[0][1]
        readme_frameworks(up, key, tmp_path / "home")
        readme_runbook(up, key, tmp_path / "runbook")
        # A second job, stopped with the stack once it has saved a checkpoint.
        second = create_job(client, file.id, "second")
        deadline = time.monotonic() + 300
        while not list(client.fine_tuning.jobs.checkpoints.list(second)):
            assert time.monotonic() < deadline, "no checkpoint of the second job"
            time.sleep(0.5)
        assert client.fine_tuning.jobs.retrieve(second).status == "running"

    with whetstone_up(data_dir, stop=signal.SIGTERM) as again:
        assert not any("API key for project" in line for line in again.lines)  # the old stands
        client = again.client(key)
        assert client.files.retrieve(file.id).filename == "veloria.jsonl"
        assert client.fine_tuning.jobs.retrieve(done.id).status == "succeeded"
        assert client.models.retrieve(done.fine_tuned_model).id == done.fine_tuned_model
        resumed = wait_for(client, second, FINAL, 600)
        assert resumed.status == "succeeded", resumed.error
        said = messages(client, second)
        stopped = [m for m in said if m.startswith("Whetstone was stopped")]
        assert len(stopped) == 1, said
        after = said[said.index(stopped[0]) + 1 :]
        assert any(re.match(r"Resuming from checkpoint at step \d+ \(attempt 1 of 3\)", m)
                   for m in after), said  # fmt: skip
        again.wait_for_line(r"vLLM for whetstone-tiny is ready", 300)
        assert ask(client, done.fine_tuned_model, qa[0][0]) == qa[0][1]
