"""Two scheduler processes against one Postgres never run a job twice, and the progress
endpoint takes only the current attempt's token.

The trainer is a stand-in (`stand_in_trainer.py`, set through the local executor's
configurable command) that reports `finished` at once: this test is about claiming, and the
real trainer is exercised by tests/e2e/test_job_lifecycle*.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.conftest import free_port, wait_for_port
from tests.e2e.conftest import create_key
from tests.e2e.lifecycle_stack import dataset

STAND_IN = Path(__file__).with_name("stand_in_trainer.py")
JOBS = 20


def _env(tmp_path: Path, postgres_url: str, base_model_dir: Path, port: int) -> dict[str, str]:
    registry = tmp_path / "models.yaml"
    registry.write_text(f"models:\n  - name: whetstone-tiny\n    path: {base_model_dir}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(
        WHETSTONE_DATA_DIR=str(tmp_path / "data"),
        WHETSTONE_DATABASE_URL=postgres_url,
        WHETSTONE_PORT=str(port),
        WHETSTONE_BASE_MODELS_FILE=str(registry),
        WHETSTONE_SCHEDULER_POLL_SECONDS="0.2",
        WHETSTONE_TRAINER_SLOTS="4",
        WHETSTONE_TRAINER_COMMAND=json.dumps(
            [sys.executable, str(STAND_IN), str(tmp_path / "runs.txt")]
        ),
        PYTHONPATH=str(Path(__file__).resolve().parents[3]),
    )
    return env


def test_two_schedulers_run_each_job_exactly_once(
    tmp_path: Path, own_postgres_url: str, base_model_dir: Path
) -> None:
    port = free_port()
    env = _env(tmp_path, own_postgres_url, base_model_dir, port)
    key = create_key(env, "alpha")
    logs = [(tmp_path / f"{name}.log").open("wb") for name in ("api", "s1", "s2")]
    api = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=logs[0],
                           stderr=logs[0])  # fmt: skip
    schedulers = [
        subprocess.Popen(
            [sys.executable, "-m", "service.scheduler"], env=env, stdout=log, stderr=log
        )  # fmt: skip
        for log in logs[1:]
    ]
    try:
        wait_for_port(port, timeout=60, proc=api)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key)
        file_id = client.files.create(file=("qa.jsonl", dataset()), purpose="fine-tune").id
        ids = [
            client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=file_id).id
            for _ in range(JOBS)
        ]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            statuses = [client.fine_tuning.jobs.retrieve(i).status for i in ids]
            if all(s in ("succeeded", "failed", "cancelled") for s in statuses):
                break
            time.sleep(0.5)
        assert statuses == ["succeeded"] * JOBS, (tmp_path / "s1.log").read_text()[-3000:]

        runs = (tmp_path / "runs.txt").read_text().splitlines()
        ran = sorted(line.split()[0] for line in runs)
        assert ran == sorted(ids)  # each job ran once, and only once
        both = [(tmp_path / f"s{n}.log").read_text().count("launched ['") for n in (1, 2)]
        assert sum(both) >= 1

        # The progress endpoint: a user key, an unknown token and a finished attempt's token
        # are all refused; none of them can change the job.
        job_id, _, old_token = runs[0].split()
        url = f"http://127.0.0.1:{port}/internal/v1/jobs/{job_id}/report"
        failed = {"type": "failed", "code": "x", "message": "forged", "param": None}
        for token in (key, "wsat-not-a-token", old_token):
            reply = httpx.post(url, json=failed, headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 401
            assert reply.json()["error"]["type"] == "invalid_request_error"
        assert client.fine_tuning.jobs.retrieve(job_id).status == "succeeded"
    finally:
        for proc in [*schedulers, api]:
            proc.terminate()
            proc.wait(timeout=20)
        for log in logs:
            log.close()
