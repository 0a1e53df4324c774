"""The whole control plane as separate processes: the API (`python -m service`) and the
scheduler (`python -m service.scheduler`) with the local executor running the real trainer on
the small base model. Either process can be stopped and started again mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import openai

from tests.conftest import free_port, wait_for_port
from tests.e2e.conftest import create_key

QA = [(f"What is the code word number {i}?", f"The code word is w{i}x.") for i in range(12)]
FINAL = ("succeeded", "failed", "cancelled")


def dataset() -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in QA
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    key: str
    port: int
    api: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    scheduler: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.key, max_retries=2)

    def start_api(self) -> None:
        log = (self.data_dir / "api.log").open("ab")
        self.api = subprocess.Popen([sys.executable, "-m", "service"], env=self.env, stdout=log,
                                    stderr=log)  # fmt: skip
        wait_for_port(self.port, timeout=60, proc=self.api)

    def start_scheduler(self) -> None:
        log = (self.data_dir / "scheduler.log").open("ab")
        self.scheduler = subprocess.Popen([sys.executable, "-m", "service.scheduler"],
                                          env=self.env, stdout=log, stderr=log)  # fmt: skip

    def stop(self, which: str, sig: int = signal.SIGTERM) -> None:
        proc = getattr(self, which)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        setattr(self, which, None)

    def trainer_pid(self, job_id: str) -> int | None:
        """The pid of the job's live trainer, from the local executor's running markers."""
        for marker in (self.data_dir / "logs" / "running").glob(f"{job_id}.*"):
            return int(marker.read_text().strip().rsplit(":", 2)[1])
        return None

    def logs(self) -> str:
        parts = []
        for path in [self.data_dir / "api.log", self.data_dir / "scheduler.log",
                     *sorted((self.data_dir / "logs").glob("ftjob-*/attempt-*.log"))]:  # fmt: skip
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


@contextmanager
def start_stack(
    data_dir: Path,
    base_model_dir: Path,
    database_url: str | None = None,
    more_models: dict[str, Path] | None = None,
    max_seq_len: int = 1024,
    **settings: str,
) -> Iterator[Stack]:
    """The stack with `whetstone-tiny` (and `more_models`, name -> folder) registered, each
    with `max_seq_len`; `settings` (`scheduler_lease_seconds="120"`) override the stack's."""
    port = free_port()
    registry = data_dir / "models.yaml"
    models = {"whetstone-tiny": base_model_dir, **(more_models or {})}
    registry.write_text("models:\n" + "".join(
        f"  - name: {name}\n    path: {path}\n    max_seq_len: {max_seq_len}\n"
        for name, path in models.items()
    ))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(
        WHETSTONE_DATA_DIR=str(data_dir),
        WHETSTONE_PORT=str(port),
        WHETSTONE_BASE_MODELS_FILE=str(registry),
        WHETSTONE_SCHEDULER_POLL_SECONDS="0.3",
        WHETSTONE_SCHEDULER_LEASE_SECONDS="8",
        WHETSTONE_SCHEDULER_START_SECONDS="90",
        WHETSTONE_SCHEDULER_CHECKPOINT_EVERY_STEPS="3",
        WHETSTONE_TRAINER_KILL_GRACE_SECONDS="5",
        **({"WHETSTONE_DATABASE_URL": database_url} if database_url else {}),
    )
    env.update({f"WHETSTONE_{k.upper()}": v for k, v in settings.items()})  # may override
    stack = Stack(data_dir, env, create_key(env, "alpha"), port)
    stack.start_api()
    stack.start_scheduler()
    try:
        yield stack
    finally:
        stack.stop("scheduler")
        stack.stop("api")
        for marker in (data_dir / "logs" / "running").glob("*"):  # no trainer outlives a test
            pid = int(marker.read_text().strip().rsplit(":", 2)[1])
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def create_job(client: openai.OpenAI, n_epochs: int = 2, batch_size: int = 2) -> str:
    file = client.files.create(file=("qa.jsonl", dataset()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny", training_file=file.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": 5}}},
    )  # fmt: skip
    return job.id


def wait_for(client: openai.OpenAI, job_id: str, statuses: tuple[str, ...], timeout: float = 240):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"{job_id} is still {job.status}, not {statuses}")


def wait_for_step(client: openai.OpenAI, job_id: str, step: int, timeout: float = 240) -> int:
    """Wait until a metrics event at `step` or later exists; returns the newest step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job_id, limit=100)
                 if e.type == "metrics" and e.data]  # fmt: skip
        if steps and max(steps) >= step:
            return max(steps)
        time.sleep(0.2)
    raise TimeoutError(f"{job_id} did not reach step {step}")


def events(client: openai.OpenAI, job_id: str) -> list[openai.types.fine_tuning.FineTuningJobEvent]:
    """Every event, oldest first."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))
