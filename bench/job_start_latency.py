"""Time from `POST /v1/fine_tuning/jobs` to `running`, and the scheduler's own cost per job.

Part 1 (end to end): starts `python -m service` and `python -m service.scheduler` on a fresh
data folder (SQLite by default, or `--database-url`), with the local executor running a
stand-in trainer (reports `started` and `finished`, loads no model: model load is excluded),
then creates `--jobs` jobs one after another and, for each, polls the job every 10 ms until
it is `running`. Includes file validation with the base model's tokenizer.

Part 2 (in-process): the scheduler's overhead per job: a burst of `--jobs` jobs in
`validating_files`, then `Scheduler.tick()` with an executor that launches nothing, timed
per job for validation (`validating_files -> queued`) and claiming (`queued -> running`:
row lock, JobSpec to the store, token, events).

    .venv/bin/python bench/job_start_latency.py [--jobs 20] [--poll 1.0] [--database-url URL]

`--database-url` must name an empty database of its own: the bench creates its tables there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from upload_throughput import ROOT, free_port, wait_for

STAND_IN = """
import os, sys, httpx
a = sys.argv
report, token = a[a.index("--report") + 1], os.environ["WHETSTONE_ATTEMPT_TOKEN"]
job = report.rstrip("/").split("/")[-2]
with httpx.Client(headers={"Authorization": "Bearer " + token}) as c:
    c.post(report, json={"type": "started", "total_steps": 1, "attempt": 1})
    c.post(report, json={"type": "finished", "trained_tokens": 1,
           "adapter_key": f"jobs/{job}/final/adapter/", "metrics_key": f"jobs/{job}/m.csv"})
"""
LINES = "".join(
    json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                             {"role": "assistant", "content": f"Answer {i}."}]}) + "\n"
    for i in range(20)
).encode()  # fmt: skip


def _env(folder: Path, args: argparse.Namespace, port: int) -> dict[str, str]:
    model = folder / "base-models" / "whetstone-tiny"
    if not model.exists():
        subprocess.run([sys.executable, "-m", "trainer", "make-base-model", str(model)],
                       check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    stand_in = folder / "stand_in.py"
    stand_in.write_text(STAND_IN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(
        WHETSTONE_DATA_DIR=str(folder), WHETSTONE_PORT=str(port),
        WHETSTONE_SCHEDULER_POLL_SECONDS=str(args.poll), WHETSTONE_TRAINER_SLOTS="4",
        WHETSTONE_TRAINER_COMMAND=json.dumps([sys.executable, str(stand_in)]),
        **({"WHETSTONE_DATABASE_URL": args.database_url} if args.database_url else {}),
    )  # fmt: skip
    return env


def end_to_end(folder: Path, args: argparse.Namespace) -> list[float]:
    port = free_port()
    env = _env(folder, args, port)
    key = subprocess.run([sys.executable, "-m", "service.cli", "keys", "create", "--project",
                          "bench"], env=env, capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.split()[-1]  # fmt: skip
    log = (folder / "bench.log").open("wb")
    procs = [subprocess.Popen([sys.executable, "-m", m], env=env, stdout=log, stderr=log,
                              cwd=ROOT) for m in ("service", "service.scheduler")]  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}", procs[0])
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}/v1"
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            file_id = http.post("/files", data={"purpose": "fine-tune"},
                                files={"file": ("qa.jsonl", LINES)}).json()["id"]  # fmt: skip
            times = []
            for _ in range(args.jobs):
                started = time.perf_counter()
                body = {"model": "whetstone-tiny", "training_file": file_id}
                job = http.post("/fine_tuning/jobs", json=body).json()
                while http.get(f"/fine_tuning/jobs/{job['id']}").json()["status"] not in (
                    "running", "succeeded", "failed"):  # fmt: skip
                    time.sleep(0.01)
                times.append(time.perf_counter() - started)
            return times
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


def overhead(folder: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds per job of validation and of claiming, in-process, with a no-op executor."""
    sys.path.insert(0, str(ROOT))
    from service.executors import AttemptState, LiveAttempt
    from service.keys import project_repository as projects
    from service.runtime import Runtime
    from service.scheduler.runner import Scheduler
    from service.settings import Settings

    class NoExecutor:
        capacity = 10_000

        def launch(self, attempt: object) -> str:
            return f"none:{getattr(attempt, 'job_id', '')}"

        def poll(self, handle: str) -> AttemptState:
            return AttemptState.running()

        def kill(self, handle: str) -> None: ...

        def running(self) -> list[LiveAttempt]:
            return []

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base-models").symlink_to(folder.parent / "e2e" / "base-models")
    settings = Settings(data_dir=folder, database_url=args.database_url,
                        scheduler_start_seconds=3600)  # fmt: skip
    services = Runtime(settings).services  # the process exits when the bench is done
    ids = _insert_jobs(services, args.jobs, projects)
    scheduler = Scheduler(settings, services.sessions, services.store,
                          registry=services.registry, executor=NoExecutor())  # fmt: skip
    from service.scheduler.claim import claim_and_launch
    from service.scheduler.prepare import validate_pending

    t0 = time.perf_counter()
    while validate_pending(scheduler.ctx):
        pass
    t1 = time.perf_counter()
    launched = claim_and_launch(scheduler.ctx)
    t2 = time.perf_counter()
    assert sorted(launched) == sorted(ids), (len(launched), len(ids))
    return (t1 - t0) / len(ids), (t2 - t1) / len(ids)


def _insert_jobs(services, n, projects):  # type: ignore[no-untyped-def]
    """`n` jobs in `validating_files` over one uploaded file, through the jobs API's code."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with services.sessions() as session, session.begin():
        key = projects.create_api_key(session, projects.get_or_create_project(session, "o"))
    with TestClient(create_app(services.settings)) as http:
        headers = {"Authorization": f"Bearer {key}"}
        file_id = http.post("/v1/files", data={"purpose": "fine-tune"}, headers=headers,
                            files={"file": ("qa.jsonl", LINES)}).json()["id"]  # fmt: skip
        body = {"model": "whetstone-tiny", "training_file": file_id}
        return [http.post("/v1/fine_tuning/jobs", json=body, headers=headers).json()["id"]
                for _ in range(n)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0, help="scheduler poll seconds")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="whetstone-bench-") as tmp:
        times = end_to_end(Path(tmp) / "e2e", args)
        validate, claim = overhead(Path(tmp) / "inproc", args)
    db = "postgres" if args.database_url else "sqlite"
    ms = sorted(t * 1000 for t in times)
    print(f"job start latency, {args.jobs} jobs, {db}, scheduler poll {args.poll:g} s")
    print(f"{'measure':<44} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9}")
    p90 = ms[max(0, int(len(ms) * 0.9) - 1)]
    print(f"{'POST /v1/fine_tuning/jobs -> running':<44} {statistics.median(ms):>9.0f} "
          f"{p90:>9.0f} {ms[-1]:>9.0f}")  # fmt: skip
    print(f"{'scheduler: validate (tokenizer), per job':<44} {validate * 1000:>9.1f}")
    print(f"{'scheduler: claim + spec + token, per job':<44} {claim * 1000:>9.1f}")


if __name__ == "__main__":
    main()
