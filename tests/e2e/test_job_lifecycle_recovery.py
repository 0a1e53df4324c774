"""Jobs survive a killed trainer and a restarted API and scheduler, and cancel, pause and
resume do what they say. Real trainer on the CPU (12 steps, a checkpoint every 3 steps),
a lease of 8 s instead of 60 so that a lost attempt is noticed quickly."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.lifecycle_stack import (
    FINAL,
    Stack,
    create_job,
    events,
    start_stack,
    wait_for,
    wait_for_step,
)

pytestmark = pytest.mark.slow
CHECKPOINT_EVERY = 3
RESUMING = re.compile(r"Resuming from checkpoint at step (\d+) \(attempt (\d+) of (\d+)\)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("recovery"), base_model_dir) as s:
        yield s


def _metric_steps(stack: Stack, job_id: str) -> list[int]:
    return [
        e.data["step"] for e in events(stack.client(), job_id) if e.type == "metrics" and e.data
    ]


def _resumed_at(stack: Stack, job_id: str) -> list[tuple[int, int, str]]:
    found = []
    for e in events(stack.client(), job_id):
        match = RESUMING.fullmatch(e.message)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), e.level))
    return found


def test_sigkilled_trainer_resumes_from_its_last_checkpoint(stack: Stack) -> None:
    client = stack.client()
    job_id = create_job(client)
    killed_after = wait_for_step(client, job_id, 4)
    pid = stack.trainer_pid(job_id)
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    job = wait_for(client, job_id, FINAL)
    assert job.status == "succeeded", stack.logs()
    resumed = _resumed_at(stack, job_id)
    assert len(resumed) == 1
    step, attempt, level = resumed[0]
    assert (attempt, level) == (2, "warn")
    # At most one checkpoint interval of steps is lost.
    assert killed_after - CHECKPOINT_EVERY <= step <= killed_after
    steps = _metric_steps(stack, job_id)
    second = steps[steps.index(step + 1, 1) :] if step + 1 in steps[1:] else []
    assert second[0] == step + 1 and second[-1] == 12


def test_restarted_api_and_scheduler_pick_the_job_up(stack: Stack) -> None:
    client = stack.client()
    job_id = create_job(client)
    wait_for_step(client, job_id, 4)
    stack.stop("scheduler")
    stack.stop("api")
    time.sleep(2)  # the outage itself: the trainer's reports fail and retry meanwhile
    stack.start_api()
    stack.start_scheduler()
    job = wait_for(client, job_id, FINAL)
    assert job.status == "succeeded", stack.logs()
    steps = _metric_steps(stack, job_id)
    assert steps[-1] == 12
    # Either the same attempt went on (its reports retried), or it resumed from a checkpoint.
    resumed = _resumed_at(stack, job_id)
    assert len(resumed) <= 1
    assert len(set(steps)) >= 12 - CHECKPOINT_EVERY


def test_cancel_stops_the_trainer(stack: Stack) -> None:
    client = stack.client()
    job_id = create_job(client, n_epochs=8)
    wait_for_step(client, job_id, 2)
    assert client.fine_tuning.jobs.cancel(job_id).status == "cancelled"
    deadline = time.monotonic() + 30
    while stack.trainer_pid(job_id) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.trainer_pid(job_id) is None, "the trainer still runs after cancel"
    seen = _metric_steps(stack, job_id)
    time.sleep(2)  # shows that no step comes after the trainer is gone: only time can
    assert _metric_steps(stack, job_id) == seen
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "cancelled" and job.fine_tuned_model is None


def test_pause_checkpoints_and_resume_continues(stack: Stack) -> None:
    client = stack.client()
    job_id = create_job(client)
    wait_for_step(client, job_id, 2)
    assert client.fine_tuning.jobs.pause(job_id).status == "pausing"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        stack.trainer_pid(job_id) is not None
        or client.fine_tuning.jobs.retrieve(job_id).status == "pausing"
    ):
        time.sleep(0.2)
    assert stack.trainer_pid(job_id) is None, "the trainer still runs after pause"
    paused_at = max(_metric_steps(stack, job_id))
    checkpoints = {c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job_id)}
    assert paused_at in checkpoints  # the pause saved a checkpoint where it stopped
    assert client.fine_tuning.jobs.retrieve(job_id).status == "paused"

    assert client.fine_tuning.jobs.resume(job_id).status == "queued"
    job = wait_for(client, job_id, FINAL)
    assert job.status == "succeeded", stack.logs()
    assert [step for step, _, _ in _resumed_at(stack, job_id)] == [paused_at]
    steps = _metric_steps(stack, job_id)
    assert steps.count(paused_at + 1) == 1 and steps[-1] == 12
