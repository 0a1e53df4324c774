"""Jobs are claimed round-robin across projects, on SQLite and PostgreSQL: a project that
queued many jobs first gets one slot, then another project's job goes next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob
from service.fine_tuning import repository as repo
from service.fine_tuning import service
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("own_postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def queue(sessions: sessionmaker[Session], project: str, count: int, age: int) -> list[str]:
    """`count` queued jobs of `project`, created `age` seconds ago and on, one a second."""
    ids = []
    with sessions() as session, session.begin():
        owner = projects.get_or_create_project(session, project)
        file = File(
            id=new_id("file"), project_id=owner.id, filename="t.jsonl", purpose="fine-tune",
            bytes=10, status="processed", format="chat", lines=3, created_at=now(),
        )  # fmt: skip
        session.add(file)
        for i in range(count):
            body = CreateFineTuningJobRequest(model="whetstone-tiny", training_file=file.id)
            job = create_job(session, REGISTRY, owner, body)
            job.created_at = now() - age + i
            service.transition(session, job, JobStatus.QUEUED)
            ids.append(job.id)
    return ids


def claim(sessions: sessionmaker[Session], at: int | None = None) -> str | None:
    """What the scheduler's claim does to the job (`transition` to `running` at `at`),
    reduced to the columns the order reads."""
    with sessions() as session, session.begin():
        job = repo.next_claimable(session, skip_locked=session.bind.dialect.name == "postgresql")  # type: ignore[union-attr]
        if job is None:
            return None
        job.attempt += 1
        job.status, job.executor_handle = "running", f"fake:{job.id}"
        job.updated_at = at or now()
        return job.project_id


def finish(sessions: sessionmaker[Session], project_id: str, at: int) -> None:
    with sessions() as session, session.begin():
        for job in session.query(FineTuningJob).filter_by(project_id=project_id, status="running"):
            job.status, job.executor_handle, job.updated_at = "succeeded", None, at


def test_a_project_with_many_queued_jobs_does_not_starve_another(
    sessions: sessionmaker[Session],
) -> None:
    queue(sessions, "alpha", 5, age=1000)
    queue(sessions, "beta", 1, age=500)  # queued after all of alpha's
    alpha, beta = project_id(sessions, "alpha"), project_id(sessions, "beta")
    order = [claim(sessions) for _ in range(4)]
    assert order == [alpha, beta, alpha, alpha]


def test_one_slot_at_a_time_still_takes_turns(sessions: sessionmaker[Session]) -> None:
    queue(sessions, "alpha", 5, age=1000)
    queue(sessions, "beta", 2, age=500)
    alpha, beta = project_id(sessions, "alpha"), project_id(sessions, "beta")
    served = []
    for minute in range(4):  # each job trains for a minute
        project = claim(sessions, at=now() + 60 * minute)
        assert project is not None
        served.append(project)
        finish(sessions, project, at=now() + 60 * minute + 59)
    assert served == [alpha, beta, alpha, beta]


def project_id(sessions: sessionmaker[Session], name: str) -> str:
    with sessions() as session, session.begin():
        return projects.get_or_create_project(session, name).id
