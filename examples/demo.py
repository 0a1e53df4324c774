"""The demo: fine-tune the built-in base model on facts it cannot know, then compare answers.

Starts `whetstone up` on a fresh data folder, uploads examples/veloria.jsonl with the
official `openai` package, creates a job, follows it with the `whetstone` CLI's live progress
bar, asks the base model and the tuned model the same questions, prints the answers side by
side, and stops the stack. Run it with `make demo`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from openai import OpenAI
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "examples" / "veloria.jsonl"
DATA_DIR = ROOT / ".whetstone-demo"
BIN = Path(sys.executable).parent
QUESTIONS = 5
JOB_EVENT = re.compile(r"^\d\d:\d\d:\d\d ftjob-")  # how `whetstone up` logs job events
console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_stack(port: int) -> tuple[subprocess.Popen[str], str, str]:
    """`whetstone up` on a fresh data folder; returns (process, base URL, API key)."""
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    proc = subprocess.Popen(
        [str(BIN / "whetstone"), "up", "--port", str(port), "--data-dir", str(DATA_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    url = key = ""
    for line in proc.stdout:
        console.print(f"[dim]up │ {line.rstrip()}[/dim]")
        if m := re.search(r"(http://\S+/v1)", line):
            url = url or m.group(1)
        if url and "ready" in line.lower():
            key = first_key()
            break
    if not (url and key):
        raise SystemExit(f"whetstone up exited before it was ready (code {proc.poll()})")
    threading.Thread(target=_echo, args=(proc,), daemon=True).start()
    return proc, url, key


def first_key() -> str:
    """The default project's first key: `whetstone up` without a terminal (its output is
    piped here) writes it to a file readable by this user only; read it, then delete it."""
    path = DATA_DIR / "first-api-key"
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return ""
    path.unlink()
    return key


def _echo(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if not JOB_EVENT.match(line):  # `jobs follow` shows those; keep the stack's own lines
            console.print(f"[dim]up │ {line.rstrip()}[/dim]")


def stop_stack(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def ask(client: OpenAI, model: str, question: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You answer questions about Veloria."},
            {"role": "user", "content": question},
        ],
        temperature=0,
        max_tokens=32,
    )
    return (reply.choices[0].message.content or "").strip()


def main() -> None:
    started = time.monotonic()
    examples = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    proc, url, key = start_stack(free_port())
    try:
        client = OpenAI(base_url=url, api_key=key)
        upload = client.files.create(file=DATASET.open("rb"), purpose="fine-tune")
        # `auto` hyperparameters: the built-in base model has random weights, so its registry
        # entry makes `auto` 25 epochs at multiplier 10 (2e-3), not a pretrained model's
        # 6 epochs at 1 (2e-4) for 16 examples.
        job = client.fine_tuning.jobs.create(
            model="whetstone-tiny", training_file=upload.id, suffix="veloria"
        )
        console.print(f"Created {job.id} on {upload.id} ({len(examples)} examples)")
        env = {**os.environ, "WHETSTONE_BASE_URL": url, "WHETSTONE_API_KEY": key}
        follow = subprocess.run([str(BIN / "whetstone"), "jobs", "follow", job.id], env=env)
        job = client.fine_tuning.jobs.retrieve(job.id)
        if follow.returncode != 0 or job.status != "succeeded":
            raise SystemExit(f"job ended {job.status}: {job.error}")
        assert job.fine_tuned_model
        table = Table(title=f"Same questions, temperature 0 ({job.fine_tuned_model})")
        for column in ("question", "trained answer", "base model", "tuned model"):
            table.add_column(column, overflow="fold")
        for example in examples[:QUESTIONS]:
            messages = example["messages"]
            question, answer = messages[1]["content"], messages[2]["content"]
            tuned = ask(client, job.fine_tuned_model, question)
            table.add_row(question, answer, ask(client, "whetstone-tiny", question), tuned)
        console.print(table)
    finally:
        stop_stack(proc)
    console.print(f"Demo finished in {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
