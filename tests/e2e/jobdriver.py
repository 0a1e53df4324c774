"""Drive a job of a running test server through the state machine, as the scheduler will.

The scheduler is not part of these tests: this module calls the same domain functions
(`service.fine_tuning.service`, `service.models.lifecycle`) on the server's own database and object
store, so the API can be tested on running, paused, checkpointed and succeeded jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session

from contracts.layout import ADAPTER, final_adapter_prefix
from contracts.messages import StepMetrics
from contracts.store import ObjectStore
from contracts.store_url import open_store
from service.db.engine import make_engine, make_sessionmaker
from service.db.tables import FineTuningJob
from service.fine_tuning import attempts, service
from service.fine_tuning.status import JobStatus
from service.models import lifecycle
from service.settings import Settings


class Server(Protocol):
    """A started test server: its environment names its data folder and database."""

    @property
    def env(self) -> dict[str, str]: ...


RESOLVED = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}


def server_settings(server: Server) -> Settings:
    return Settings(
        data_dir=Path(server.env["WHETSTONE_DATA_DIR"]),
        database_url=server.env.get("WHETSTONE_DATABASE_URL"),
        object_store_url=server.env.get("WHETSTONE_OBJECT_STORE_URL"),
        s3_endpoint_url=server.env.get("WHETSTONE_S3_ENDPOINT_URL"),
    )


def server_store(server: Server) -> ObjectStore:
    settings = server_settings(server)
    return open_store(settings.resolved_object_store_url, settings.s3_endpoint_url)


@contextmanager
def job_session(server: Server, job_id: str) -> Iterator[tuple[Session, FineTuningJob]]:
    """The job's row in a transaction that commits on exit."""
    engine = make_engine(server_settings(server).resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            job = session.get(FineTuningJob, job_id)
            assert job is not None, job_id
            yield session, job
    finally:
        engine.dispose()


def start(server: Server, job_id: str) -> None:
    """validating_files -> queued (hyperparameters resolved) -> running."""
    with job_session(server, job_id) as (session, job):
        service.record_hyperparameters(job, RESOLVED)
        service.transition(session, job, JobStatus.QUEUED)
        service.transition(session, job, JobStatus.RUNNING)


def start_again(server: Server, job_id: str) -> None:
    """queued (after a resume) -> running."""
    with job_session(server, job_id) as (session, job):
        service.transition(session, job, JobStatus.RUNNING)


def attempt_ended(server: Server, job_id: str) -> None:
    """The attempt has stopped, as the scheduler sees it: a `pausing` job is `paused`."""
    with job_session(server, job_id) as (session, job):
        attempts.end(job, stopped_as_asked=True)
        service.paused_if_pausing(session, job)


def checkpoint(server: Server, job_id: str, step: int, loss: float = 1.0) -> str:
    """Register a checkpoint and publish its model; returns the checkpoint's model name."""
    with job_session(server, job_id) as (session, job):
        service.add_metrics_event(session, job, step, 100, {"train_loss": loss})
        row = service.register_checkpoint(session, job, step, StepMetrics(train_loss=loss))
        name, adapter = row.fine_tuned_model_checkpoint, row.store_key + ADAPTER
        lifecycle.publish(session, server_store(server), job, name, "checkpoint", adapter)
    return name


def succeed(server: Server, job_id: str, trained_tokens: int = 4096) -> str:
    """Finish the job successfully and publish its model; returns the model's name."""
    with job_session(server, job_id) as (session, job):
        service.mark_succeeded(session, job, trained_tokens=trained_tokens)
        name, prefix = job.output_model, final_adapter_prefix(job.id)
        lifecycle.publish(session, server_store(server), job, name, "final", prefix)
    return name
