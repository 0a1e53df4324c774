"""A job's attempt lifecycle (`service.fine_tuning.attempts`) and the queue queries of the jobs
repository, on a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.fine_tuning import attempts, service
from service.fine_tuning import repository as repo
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import JobStatus, RequestedAction
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}
SPEC = '{"job_id": "x"}'


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture()
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


def _queued(session: Session) -> FineTuningJob:
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
    attempts.queue_validated(session, job, max_attempts=3)
    session.commit()
    return job


def _running(session: Session) -> FineTuningJob:
    job = _queued(session)
    _, token_hash = attempts.new_token()
    assert attempts.take(session, job, token_hash) == 1
    attempts.start(session, job, SPEC, start_seconds=300)
    attempts.record_handle(session, job.id, 1, "fake:1")
    session.commit()
    session.refresh(job)
    return job


def _last_event(session: Session, job: FineTuningJob) -> FineTuningJobEvent:
    event = session.scalars(
        select(FineTuningJobEvent)
        .where(FineTuningJobEvent.job_id == job.id)
        .order_by(FineTuningJobEvent.seq.desc())
    ).first()
    assert event is not None
    return event


def test_start_takes_the_next_attempt_and_runs(session: Session) -> None:
    job = _queued(session)
    token, token_hash = attempts.new_token()

    assert attempts.take(session, job, token_hash) == 1
    attempts.start(session, job, SPEC, start_seconds=300)

    assert job.status == "running" and job.attempt == 1 and job.spec == SPEC
    assert job.lease_expires_at is not None and job.lease_expires_at >= now() + 299
    assert attempts.is_current(job, token) and not attempts.is_current(job, "wsat-other")
    assert _last_event(session, job).message == "Fine-tuning job started"


def test_a_stale_attempt_number_cannot_be_taken_twice(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        job_id = _queued(session).id
    with sessions() as first, sessions() as second:
        mine, theirs = first.get(FineTuningJob, job_id), second.get(FineTuningJob, job_id)
        assert mine is not None and theirs is not None  # both read attempt 0
        assert attempts.take(first, mine, attempts.new_token()[1]) == 1
        first.commit()
        assert attempts.take(second, theirs, attempts.new_token()[1]) is None
        second.rollback()
    with sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None and job.attempt == 1


def test_a_later_attempt_says_where_it_resumes(session: Session) -> None:
    job = _queued(session)
    job.attempt, job.resume_from = 1, "jobs/x/checkpoints/step-00000040/"
    assert attempts.take(session, job, attempts.new_token()[1]) == 2
    attempts.start(session, job, SPEC, start_seconds=300)
    event = _last_event(session, job)
    assert event.level == "warn"
    assert event.message == "Resuming from checkpoint at step 40 (attempt 2 of 3)"


def test_the_handle_of_an_earlier_attempt_is_not_recorded(session: Session) -> None:
    job = _running(session)
    attempts.record_handle(session, job.id, 0, "fake:stale")
    session.commit()
    session.refresh(job)
    assert job.executor_handle == "fake:1"


def test_renew_and_lease_expired(session: Session) -> None:
    job = _running(session)
    attempts.renew(job, 60)
    assert job.lease_expires_at is not None and not attempts.lease_expired(job)
    job.lease_expires_at = now() - 1
    assert attempts.lease_expired(job)
    job.lease_expires_at = None
    assert not attempts.lease_expired(job)


@pytest.mark.parametrize("stopped_as_asked", [True, False])
def test_a_pause_does_not_use_up_an_attempt(session: Session, stopped_as_asked: bool) -> None:
    job = _running(session)
    service.pause(session, job)
    attempts.end(job, stopped_as_asked=stopped_as_asked)
    assert job.max_attempts == (4 if stopped_as_asked else 3)
    assert job.executor_handle is None and job.attempt_token_hash is None
    assert job.lease_expires_at is None and job.requested_action == RequestedAction.NONE.value
    attempts.end(job, stopped_as_asked=stopped_as_asked)  # ending twice counts once
    assert job.max_attempts == (4 if stopped_as_asked else 3)


def test_an_attempt_that_ends_without_a_pause_keeps_max_attempts(session: Session) -> None:
    job = _running(session)
    attempts.end(job, stopped_as_asked=True)
    assert job.max_attempts == 3


def test_retry_or_fail_requeues_then_fails_after_max_attempts(session: Session) -> None:
    job = _running(session)
    attempts.retry_or_fail(session, job, "it was lost")
    assert job.status == "queued" and job.attempt == 1 and job.executor_handle is None
    assert _last_event(session, job).message == (
        "Training attempt 1 ended because it was lost; the job is queued to resume"
    )
    job.attempt = 3
    job.status = JobStatus.RUNNING.value
    attempts.retry_or_fail(session, job, "it was lost")
    assert job.status == "failed" and job.error_code == "training_failed"
    assert (
        job.error_message
        == "Training failed after 3 attempts; the last one ended because it was lost."
    )


def test_requeue_without_counting_gives_the_attempt_back(session: Session) -> None:
    job = _running(session)
    attempts.end(job)
    attempts.requeue(session, job, "stopped", counts_attempt=False)
    assert job.status == "queued" and job.attempt == 0
    assert _last_event(session, job).level == "warn"


def test_unclaim_puts_the_job_back_uncounted(session: Session) -> None:
    job = _running(session)
    attempts.unclaim(session, job, "No trainer could be started yet")
    assert job.status == "queued" and job.attempt == 0
    assert job.attempt_token_hash is None and job.lease_expires_at is None


def test_a_failed_start_counts_and_is_retried_later(session: Session) -> None:
    job = _queued(session)
    assert attempts.take(session, job, attempts.new_token()[1]) == 1
    attempts.start(session, job, SPEC, start_seconds=300)  # then the launch raised
    attempts.start_failed(job, 1)
    attempts.retry_later(session, job, job.attempt, 5, "try again")
    assert job.status == "queued" and job.attempt == 1 and job.attempt_token_hash is None
    assert job.lease_expires_at is not None and job.lease_expires_at >= now() + 4
    session.commit()
    assert repo.next_claimable(session, skip_locked=False) is None  # it waits for its time
    job.lease_expires_at = now()
    session.commit()
    assert repo.next_claimable(session, skip_locked=False) is job


def test_retry_later_while_validating_keeps_the_status(session: Session) -> None:
    job = _queued(session)
    job.status = JobStatus.VALIDATING_FILES.value
    attempts.retry_later(session, job, 1, 5, "files later")
    assert job.status == "validating_files" and job.attempt == 1
    assert _last_event(session, job).message == "files later"
    session.commit()
    assert repo.validating_job_ids(session, 8) == []


def test_fail_ends_the_attempt(session: Session) -> None:
    job = _running(session)
    attempts.fail(session, job, "training_failed", "refused")
    assert job.status == "failed" and job.error_message == "refused"
    assert job.executor_handle is None and job.attempt_token_hash is None


def test_queue_queries(session: Session) -> None:
    running = _running(session)
    queued = _queued(session)
    held = _queued(session)
    held.requested_action = RequestedAction.PAUSE.value  # resumed before its attempt ended
    session.commit()

    assert repo.next_claimable(session, skip_locked=False) is queued
    assert repo.jobs_holding_attempts(session, skip_locked=False) == [running]
    assert repo.held_attempts(session) == {(running.id, 1)}
    assert repo.count_busy(session) == 1
    assert repo.lock_job(session, queued.id) is queued
