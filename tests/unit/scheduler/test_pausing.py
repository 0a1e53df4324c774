"""A paused job reports `pausing` while its attempt saves a checkpoint and stops, then `paused`
once the scheduler sees the attempt has ended, however it ended (the fake executor of
`test_shutdown` stands in for trainer processes)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from contracts.store_url import open_store
from service.db.tables import FineTuningJob
from service.executors import AttemptState, Outcome
from service.fine_tuning import service
from service.fine_tuning.progress import action_for
from service.ids import now
from service.scheduler.context import SchedulerContext
from service.scheduler.leases import watch_attempts
from service.settings import Settings
from tests.unit.scheduler.test_shutdown import REGISTRY, FakeExecutor, _running_job, sessions

__all__ = ["sessions"]  # the fixture


class Exits(FakeExecutor):
    """An attempt ends as `outcomes` says once it is no longer live."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, AttemptState] = {}

    def poll(self, handle: str) -> AttemptState:
        if handle in self.live:
            return AttemptState(Outcome.RUNNING)
        return self.outcomes.get(handle, AttemptState(Outcome.SUCCEEDED, 0))


def _status(sessions: sessionmaker[Session], job_id: str) -> str:
    with sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        return job.status


def test_pausing_until_the_attempt_has_stopped(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    executor = Exits()
    with sessions() as session:
        stopped, crashed, silent = (_running_job(session, executor) for _ in range(3))
        for job_id in (stopped, crashed, silent):
            job = session.get(FineTuningJob, job_id)
            assert job is not None
            job.lease_expires_at = now() + 600
            service.pause(session, job)
            assert job.status == "pausing" and action_for(job) == "pause"
        session.get(FineTuningJob, silent).lease_expires_at = now() - 1
        session.commit()
    ctx = SchedulerContext(
        settings=Settings(data_dir=tmp_path), sessions=sessions,
        store=open_store((tmp_path / "objects").as_uri()), registry=REGISTRY,
        executor=executor,  # type: ignore[arg-type]
    )  # fmt: skip

    watch_attempts(ctx)  # all still run: the two with a lease stay pausing
    assert [_status(sessions, j) for j in (stopped, crashed)] == ["pausing", "pausing"]
    assert _status(sessions, silent) == "paused"  # no word from it: killed, then paused
    assert f"fake:{silent}:1" in executor.killed

    executor.live.pop(f"fake:{stopped}:1")  # checkpointed and exited 0, as told
    executor.live.pop(f"fake:{crashed}:1")
    executor.outcomes[f"fake:{crashed}:1"] = AttemptState(Outcome.FAILED, 1, "killed")
    watch_attempts(ctx)
    assert [_status(sessions, j) for j in (stopped, crashed)] == ["paused", "paused"]
    with sessions() as session:
        job = session.get(FineTuningJob, stopped)
        assert job is not None and job.executor_handle is None and job.requested_action == "none"
        service.resume(session, job)
        assert job.status == "queued"
