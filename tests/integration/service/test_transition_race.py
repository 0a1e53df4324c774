"""Job transitions are a compare-and-set on both databases: a cancel and a pause that read
the same `running` job cannot both pass (SQLite has no row locks to keep them apart)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.fine_tuning import service
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import InvalidTransition, JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry

PAUSING = "Pausing fine-tuning job: it stops at its next checkpoint"
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


def _running_job(sessions: sessionmaker[Session]) -> str:
    with sessions() as session, session.begin():
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
        service.transition(session, job, JobStatus.RUNNING)
        return job.id


def _statuses_in_events(sessions: sessionmaker[Session], job_id: str) -> list[str]:
    with sessions() as session:
        stmt = select(FineTuningJobEvent.message).where(FineTuningJobEvent.job_id == job_id)
        return list(session.scalars(stmt.order_by(FineTuningJobEvent.seq)))


def test_a_pause_that_read_a_job_since_cancelled_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _running_job(sessions)
    first, second = sessions(), sessions()
    try:
        cancelling = first.get_one(FineTuningJob, job_id)
        pausing = second.get_one(FineTuningJob, job_id)  # read while still running
        service.cancel(first, cancelling)
        first.commit()
        with pytest.raises(InvalidTransition, match="is cancelled and cannot become pausing"):
            service.pause(second, pausing)
        second.rollback()
    finally:
        first.close()
        second.close()
    with sessions() as session:
        assert session.get_one(FineTuningJob, job_id).status == "cancelled"
    messages = _statuses_in_events(sessions, job_id)
    assert messages[-1] == "Fine-tuning job cancelled"
    assert PAUSING not in messages


def test_a_cancel_that_read_a_job_since_pausing_still_cancels_it(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _running_job(sessions)
    first, second = sessions(), sessions()
    try:
        pausing = first.get_one(FineTuningJob, job_id)
        cancelling = second.get_one(FineTuningJob, job_id)
        service.pause(first, pausing)
        first.commit()
        service.cancel(second, cancelling)
        second.commit()
    finally:
        first.close()
        second.close()
    ends = _statuses_in_events(sessions, job_id)[-2:]
    assert ends == [PAUSING, "Fine-tuning job cancelled"]


Action = Callable[[Session, FineTuningJob], None]


def test_a_cancel_and_a_pause_sent_together_end_in_one_story(
    sessions: sessionmaker[Session],
) -> None:
    """Threads that read the job at the same moment, as two API requests would; whatever
    wins, the events tell one consistent story and the row agrees with them."""
    for _ in range(5):
        job_id = _running_job(sessions)
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def act(
            name: str,
            action: Action,
            job_id: str = job_id,
            barrier: threading.Barrier = barrier,
            outcomes: dict[str, str] = outcomes,
        ) -> None:
            with sessions() as session:
                job = session.get_one(FineTuningJob, job_id)
                barrier.wait()
                try:
                    action(session, job)
                    session.commit()
                    outcomes[name] = "done"
                except InvalidTransition:
                    session.rollback()
                    outcomes[name] = "refused"

        threads = [
            threading.Thread(target=act, args=("cancel", service.cancel)),
            threading.Thread(target=act, args=("pause", service.pause)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        messages = _statuses_in_events(sessions, job_id)
        ends = [m for m in messages if m in ("Fine-tuning job cancelled", PAUSING)]
        with sessions() as session:
            status = session.get_one(FineTuningJob, job_id).status
        if outcomes["pause"] == "refused":  # the cancel won: the pause came too late
            assert outcomes["cancel"] == "done"
            assert ends == ["Fine-tuning job cancelled"] and status == "cancelled"
        else:  # the pause won; the cancel, checked again, cancels the pausing job
            assert outcomes == {"cancel": "done", "pause": "done"}
            assert ends == [PAUSING, "Fine-tuning job cancelled"]
            assert status == "cancelled"
