"""The domain functions the API and the scheduler call, on a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.layout import ADAPTER, final_adapter_prefix
from contracts.messages import StepMetrics
from contracts.store_url import open_store
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.errors import InvalidRequest
from service.fine_tuning import repository as repo
from service.fine_tuning import service
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import InvalidTransition, JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.models import lifecycle
from service.models import repository as models_repo
from service.registry import BaseModelEntry

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}


@pytest.fixture()
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def _job(session: Session, **request: object) -> FineTuningJob:
    project = projects.get_or_create_project(session, "alpha")
    file = File(
        id=new_id("file"), project_id=project.id, filename="t.jsonl", purpose="fine-tune",
        bytes=10, status="processed", format="chat", lines=3, created_at=now(),
    )  # fmt: skip
    session.add(file)
    body = CreateFineTuningJobRequest.model_validate(
        {"model": "whetstone-tiny", "training_file": file.id, **request}
    )
    return create_job(session, REGISTRY, project, body)


def _messages(session: Session, job: FineTuningJob) -> list[str]:
    stmt = select(FineTuningJobEvent.message).where(FineTuningJobEvent.job_id == job.id)
    return list(session.scalars(stmt.order_by(FineTuningJobEvent.seq)))


def test_every_transition_writes_an_event(session: Session) -> None:
    job = _job(session, suffix="demo")
    assert job.status == "validating_files" and job.output_model.endswith(f":demo:{job.id[6:14]}")
    path = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSING, JobStatus.PAUSED)
    for status in (*path, JobStatus.QUEUED):
        service.transition(session, job, status)
    assert _messages(session, job) == [
        f"Created fine-tuning job: {job.id}",
        f"Validating training file: {job.training_file}",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
        "Pausing fine-tuning job: it stops at its next checkpoint",
        "Fine-tuning job paused",
        "Fine-tuning job resumed, moving job to queued state",
    ]
    with pytest.raises(InvalidTransition):
        service.transition(session, job, JobStatus.SUCCEEDED)
    assert job.status == "queued" and len(_messages(session, job)) == 7


def test_checkpoints_success_and_models(session: Session, tmp_path: Path) -> None:
    """The job's side, with each model published as the scheduler does."""
    store = open_store((tmp_path / "objects").as_uri())
    job = _job(session)
    service.transition(session, job, JobStatus.QUEUED)
    service.transition(session, job, JobStatus.RUNNING)
    service.add_metrics_event(session, job, 5, 20, {"train_loss": 1.25, "valid_loss": None})
    ckpt = service.register_checkpoint(session, job, 10, StepMetrics(train_loss=1.0))
    assert service.register_checkpoint(session, job, 10, StepMetrics()) is ckpt  # a retry
    assert ckpt.id.startswith("ftckpt-") and ckpt.metrics == {"step": 10, "train_loss": 1.0}
    assert ckpt.fine_tuned_model_checkpoint == f"{job.output_model}:ckpt-step-10"
    assert ckpt.store_key == f"jobs/{job.id}/checkpoints/step-00000010/"
    name = ckpt.fine_tuned_model_checkpoint
    lifecycle.publish(session, store, job, name, "checkpoint", ckpt.store_key + ADAPTER)
    service.mark_succeeded(session, job, trained_tokens=1234, result_files=["file-r"])
    prefix = final_adapter_prefix(job.id)
    model = lifecycle.publish(session, store, job, job.output_model, "final", prefix)
    assert (job.status, job.fine_tuned_model, job.trained_tokens) == (
        "succeeded", job.output_model, 1234,
    )  # fmt: skip
    assert job.finished_at is not None and model.adapter_prefix == f"jobs/{job.id}/final/adapter/"
    names = {m.id for m in models_repo.list_models(session, job.project_id)}
    assert names == {ckpt.fine_tuned_model_checkpoint, job.output_model}
    assert _messages(session, job)[-4:] == [
        "Step 5/20: training loss=1.2500",
        f"Checkpoint created at step 10 with Snapshot ID: {ckpt.fine_tuned_model_checkpoint}",
        f"New fine-tuned model created: {job.output_model}",
        "The job has successfully completed",
    ]


def test_mark_failed_records_openai_error_fields(session: Session) -> None:
    job = _job(session)
    event = service.mark_failed(
        session, job, "invalid_training_file", "line 3: too long", "training_file"
    )
    assert (job.status, job.error_code, job.error_param) == (
        "failed",
        "invalid_training_file",
        "training_file",
    )
    assert event.level == "error" and event.message == "line 3: too long"


def test_api_actions_set_what_the_scheduler_must_tell_the_attempt(session: Session) -> None:
    job = _job(session)
    with pytest.raises(InvalidRequest):
        service.pause(session, job)  # only a running job pauses
    with pytest.raises(InvalidRequest):
        service.resume(session, job)
    service.transition(session, job, JobStatus.QUEUED)
    service.transition(session, job, JobStatus.RUNNING)
    service.pause(session, job)
    assert (job.status, job.requested_action) == ("pausing", "pause")
    # The attempt has stopped: the job is paused, and resumable.
    assert service.paused_if_pausing(session, job) and job.status == "paused"
    assert not service.paused_if_pausing(session, job)
    service.resume(session, job)
    assert job.status == "queued"
    service.transition(session, job, JobStatus.RUNNING)
    service.cancel(session, job)
    assert (job.status, job.requested_action) == ("cancelled", "cancel")
    with pytest.raises(InvalidRequest):
        service.cancel(session, job)


def test_metadata_filter(session: Session) -> None:
    tagged = _job(session, metadata={"team": "a", "run": "1"})
    other = _job(session, metadata={"team": "b"})
    bare = _job(session)
    project = tagged.project_id

    def ids(**kw: object) -> set[str]:
        return {j.id for j in repo.list_jobs(session, project, after=None, limit=10, **kw).items}  # type: ignore[arg-type]

    assert ids(metadata={"team": "a"}) == {tagged.id}
    assert ids(metadata={"team": "a", "run": "2"}) == set()
    assert ids(without_metadata=True) == {bare.id}
    assert ids() == {tagged.id, other.id, bare.id}
