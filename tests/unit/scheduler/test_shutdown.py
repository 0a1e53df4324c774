"""Stopping `whetstone up` with attempts alive: each trainer is stopped, and its job is
requeued (running), kept (paused) or left as it ended, on a real SQLite database with a fake
executor (no trainer process is needed to see what the database keeps)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.store_url import open_store
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.executors import AttemptState, LiveAttempt, Outcome
from service.fine_tuning import service
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry
from service.scheduler.context import SchedulerContext
from service.scheduler.shutdown import stop_attempts
from service.settings import Settings

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}


class FakeExecutor:
    """Attempts that run until killed; a kill ends them at once."""

    capacity = 4

    def __init__(self) -> None:
        self.live: dict[str, LiveAttempt] = {}
        self.killed: list[str] = []

    def launch(self, attempt: object) -> str:
        raise NotImplementedError

    def poll(self, handle: str) -> AttemptState:
        if handle in self.live:
            return AttemptState(Outcome.RUNNING)
        return AttemptState(Outcome.SUCCEEDED, 0)

    def kill(self, handle: str) -> None:
        self.killed.append(handle)
        self.live.pop(handle, None)

    def running(self) -> list[LiveAttempt]:
        return list(self.live.values())


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def _running_job(session: Session, executor: FakeExecutor) -> str:
    project = projects.get_or_create_project(session, "alpha")
    file = File(
        id=new_id("file"), project_id=project.id, filename="t.jsonl", purpose="fine-tune",
        bytes=10, status="processed", format="chat", lines=3, created_at=now(),
    )  # fmt: skip
    session.add(file)
    body = CreateFineTuningJobRequest.model_validate(
        {"model": "whetstone-tiny", "training_file": file.id}
    )
    job = create_job(session, REGISTRY, project, body)
    service.transition(session, job, JobStatus.QUEUED)
    job.attempt = 1
    service.transition(session, job, JobStatus.RUNNING)
    job.executor_handle = f"fake:{job.id}:1"
    executor.live[job.executor_handle] = LiveAttempt(job.executor_handle, job.id, 1)
    return job.id


def test_running_paused_and_ended_jobs(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    executor = FakeExecutor()
    with sessions() as session:
        running, paused, done = (_running_job(session, executor) for _ in range(3))
        service.pause(session, session.get(FineTuningJob, paused))
        service.mark_succeeded(session, session.get(FineTuningJob, done), trained_tokens=5)
        session.commit()
        before = session.get(FineTuningJob, paused).max_attempts  # type: ignore[union-attr]
    ctx = SchedulerContext(
        settings=Settings(data_dir=tmp_path), sessions=sessions,
        store=open_store((tmp_path / "objects").as_uri()), registry=REGISTRY,
        executor=executor,  # type: ignore[arg-type]
    )  # fmt: skip

    assert stop_attempts(ctx, grace_seconds=1) == [running]

    assert sorted(executor.killed) == sorted(f"fake:{j}:1" for j in (running, paused, done))
    with sessions() as session:
        jobs = {j: session.get(FineTuningJob, j) for j in (running, paused, done)}
        assert all(job is not None and job.executor_handle is None for job in jobs.values())
        requeued = jobs[running]
        assert requeued is not None and requeued.status == "queued" and requeued.attempt == 0
        last = session.scalars(
            select(FineTuningJobEvent)
            .where(FineTuningJobEvent.job_id == running)
            .order_by(FineTuningJobEvent.seq.desc())
        ).first()
        assert last is not None and last.level == "warn"
        assert last.message.startswith("Whetstone was stopped while the job was running")
        kept = jobs[paused]
        assert kept is not None and kept.status == "paused" and kept.max_attempts == before + 1
        assert jobs[done] is not None and jobs[done].status == "succeeded"  # type: ignore[union-attr]
