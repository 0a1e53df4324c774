"""The SDK's jobs, events, checkpoints and models resources against the real server (sync
and async). Runs once service/fine_tuning/routes.py and service/models/routes.py exist; needs no
scheduler: jobs stay in validating_files until cancelled, or are driven further through
the scheduler's domain functions (`tests.e2e.jobdriver`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clients.sdk import AsyncWhetstone, BadRequestError, NotFoundError, Whetstone
from tests.e2e import jobdriver

from .conftest import Server

GOOD = json.dumps({"messages": [{"role": "user", "content": "Capital of Veloria?"},
                                {"role": "assistant", "content": "Quillhaven."}]})  # fmt: skip


def upload(client: Whetstone, tmp_path: Path) -> str:
    path = tmp_path / "train.jsonl"
    path.write_text(f"{GOOD}\n" * 10)
    return client.files.create(file=path).id


def test_jobs_create_list_retrieve_cancel_events(server: Server, tmp_path: Path) -> None:
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        file_id = upload(client, tmp_path)
        method = {"type": "supervised",
                  "supervised": {"hyperparameters": {"n_epochs": 2}}}  # fmt: skip
        ids = [
            client.fine_tuning.jobs.create(
                model="whetstone-tiny", training_file=file_id, suffix=f"s{i}",
                method=method, metadata={"run": "clients"},
            ).id
            for i in range(5)
        ]  # fmt: skip
        listed = [j.id for j in client.fine_tuning.jobs.list(limit=2, metadata={"run": "clients"})]
        assert set(ids) <= set(listed) and len(listed) == len(set(listed))
        job = client.fine_tuning.jobs.retrieve(ids[0])
        assert job.training_file == file_id and job.status == "validating_files"
        assert job.method is not None and job.method.type == "supervised"
        cancelled = client.fine_tuning.jobs.cancel(ids[0])
        assert cancelled.status == "cancelled"
        with pytest.raises(BadRequestError):
            client.fine_tuning.jobs.pause(ids[0])
        with pytest.raises(BadRequestError):
            client.fine_tuning.jobs.resume(ids[0])
        messages = [e.message for e in client.fine_tuning.jobs.list_events(ids[0], limit=1)]
        assert f"Created fine-tuning job: {ids[0]}" in messages
        assert list(client.fine_tuning.jobs.checkpoints.list(ids[0])) == []
        events = list(client.fine_tuning.jobs.follow(ids[0], poll_interval=0.1))
        assert events[0].message == f"Created fine-tuning job: {ids[0]}"  # oldest first
        with pytest.raises(NotFoundError):
            client.fine_tuning.jobs.retrieve("ftjob-nope")
        with pytest.raises(BadRequestError) as info:
            client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=file_id,
                                           hyperparameters={"n_epochs": 99})  # fmt: skip
        assert info.value.param is not None and "n_epochs" in info.value.param


def test_models(server: Server) -> None:
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        names = [m.id for m in client.models.list()]
        assert "whetstone-tiny" in names
        assert client.models.retrieve("whetstone-tiny").id == "whetstone-tiny"
        with pytest.raises(NotFoundError):
            client.models.delete("ft:whetstone-tiny:nobody::00000000")


def test_async_jobs_and_models(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(f"{GOOD}\n" * 10)

    async def go() -> None:
        async with AsyncWhetstone(base_url=server.url, api_key=server.api_key) as client:
            file_id = (await client.files.create(file=path)).id
            jobs = await asyncio.gather(*(
                client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=file_id)
                for _ in range(3)
            ))  # fmt: skip
            listed = [j.id async for j in client.fine_tuning.jobs.list(limit=1)]
            assert {j.id for j in jobs} <= set(listed)
            assert (await client.fine_tuning.jobs.retrieve(jobs[0].id)).id == jobs[0].id
            assert (await client.fine_tuning.jobs.cancel(jobs[0].id)).status == "cancelled"
            events = [e async for e in client.fine_tuning.jobs.list_events(jobs[0].id)]
            assert events and events[0].object == "fine_tuning.job.event"
            assert [c async for c in client.fine_tuning.jobs.checkpoints.list(jobs[0].id)] == []
            assert "whetstone-tiny" in [m.id async for m in client.models.list()]
            assert (await client.models.retrieve("whetstone-tiny")).owned_by

    asyncio.run(go())


def test_checkpoints_and_fine_tuned_models(server: Server, tmp_path: Path) -> None:
    """Past `validating_files` the job is driven through the scheduler's domain functions
    (`tests.e2e.jobdriver`), since no scheduler runs here."""
    with Whetstone(base_url=server.url, api_key=server.api_key) as client:
        job = client.fine_tuning.jobs.create(
            model="whetstone-tiny", training_file=upload(client, tmp_path), suffix="sdk"
        )
        jobdriver.start(server, job.id)
        assert client.fine_tuning.jobs.pause(job.id).status == "pausing"
        jobdriver.attempt_ended(server, job.id)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
        assert client.fine_tuning.jobs.resume(job.id).status == "queued"
        jobdriver.start_again(server, job.id)
        names = [jobdriver.checkpoint(server, job.id, step, loss=0.5) for step in (5, 10)]
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=1))
        assert [c.step_number for c in checkpoints] == [10, 5]
        assert checkpoints[0].fine_tuned_model_checkpoint == names[1]
        assert checkpoints[0].metrics.train_loss == 0.5
        metrics = [e.metrics for e in client.fine_tuning.jobs.list_events(job.id) if e.metrics]
        assert metrics and metrics[0].step == 10
        model = jobdriver.succeed(server, job.id)
        done = client.fine_tuning.jobs.wait(job.id, poll_interval=0.1, timeout=10)
        assert done.fine_tuned_model == model and model.startswith("ft:whetstone-tiny:clients:sdk:")
        assert client.models.retrieve(model).owned_by == done.organization_id
        assert client.models.delete(names[0]).deleted
        with pytest.raises(NotFoundError):
            client.models.retrieve(names[0])
        assert model in [m.id for m in client.models.list()]
