"""`jobs.wait` and `jobs.follow`, against the in-process stand-in (`standin.py`).

The stand-in job moves one step each time it is retrieved, so the tests see a job make
progress as a real one does, without a trainer.
"""

from __future__ import annotations

import asyncio

import pytest

from clients.sdk import (
    AsyncWhetstone,
    JobCancelledError,
    JobFailedError,
    WaitTimeoutError,
    Whetstone,
)

from .scripted import ScriptedJob
from .standin import Seen, StandIn


def test_wait_returns_the_succeeded_job(standin: StandIn) -> None:
    ScriptedJob(["queued", "running", "running", "succeeded"]).serve(standin)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        job = client.fine_tuning.jobs.wait("ftjob-1", poll_interval=0.01)
    assert job.status == "succeeded"
    assert job.fine_tuned_model == "ft:m:p::abc"


def test_wait_raises_with_the_jobs_error(standin: StandIn) -> None:
    error = {"code": "invalid_training_file", "message": "line 3: example too long",
             "param": "training_file"}  # fmt: skip
    ScriptedJob(["running", "failed"], error).serve(standin)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        with pytest.raises(JobFailedError, match="line 3: example too long") as info:
            client.fine_tuning.jobs.wait("ftjob-1", poll_interval=0.01)
    assert (info.value.code, info.value.param) == ("invalid_training_file", "training_file")
    assert info.value.job.status == "failed"


def test_wait_raises_when_cancelled(standin: StandIn) -> None:
    ScriptedJob(["running", "cancelled"]).serve(standin)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        with pytest.raises(JobCancelledError):
            client.fine_tuning.jobs.wait("ftjob-1", poll_interval=0.01)


def test_wait_gives_up_after_its_timeout(standin: StandIn) -> None:
    ScriptedJob(["running"]).serve(standin)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        with pytest.raises(WaitTimeoutError, match="still running"):
            client.fine_tuning.jobs.wait("ftjob-1", poll_interval=0.05, timeout=0.2)


def test_follow_yields_every_event_once_oldest_first(standin: StandIn) -> None:
    job = ScriptedJob(["queued", "running", "running", "running", "succeeded"])
    job.serve(standin)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        events = list(client.fine_tuning.jobs.follow("ftjob-1", poll_interval=0.01))
    assert [e.id for e in events] == [f"ftevent-{i}" for i in range(5)]
    metrics = [e.metrics for e in events]
    assert all(m is not None for m in metrics)
    assert [m.train_loss for m in metrics if m] == [2.0, 1.5, 1.0, 0.5, 0.0]


def test_follow_pages_back_through_a_long_history(standin: StandIn) -> None:
    job = ScriptedJob(["running"] * 250 + ["succeeded"])
    for _ in range(250):  # history written before anyone follows
        job.retrieve(Seen("GET", "", {}, {}, b""))
    job.serve(standin)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        events = list(client.fine_tuning.jobs.follow("ftjob-1", poll_interval=0.01))
    assert [e.id for e in events] == [f"ftevent-{i}" for i in range(251)]


def test_async_wait_and_follow(standin: StandIn) -> None:
    ScriptedJob(["queued", "running", "succeeded"]).serve(standin)

    async def go() -> tuple[list[str], str]:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            ids = [e.id async for e in client.fine_tuning.jobs.follow("ftjob-1", poll_interval=0)]
            job = await client.fine_tuning.jobs.wait("ftjob-1", poll_interval=0)
            return ids, job.status

    assert asyncio.run(go()) == (["ftevent-0", "ftevent-1", "ftevent-2"], "succeeded")
