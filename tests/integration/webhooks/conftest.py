"""Shared by the webhook tests: a fresh PostgreSQL database, endpoints and jobs made and
ended through the same domain functions the API and the scheduler call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.fine_tuning import attempts, service
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry
from service.settings import Settings
from service.webhooks import endpoints
from service.webhooks.schemas import CreateWebhookEndpointRequest

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}
UNWRAP = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1").webhooks


@dataclass
class Db:
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture()
def db(own_postgres_url: str) -> Iterator[Db]:
    engine = make_engine(own_postgres_url)
    upgrade(engine)
    yield Db(engine, make_sessionmaker(engine))
    engine.dispose()


def settings(**values: object) -> Settings:
    defaults: dict[str, object] = {
        "webhook_retry_seconds": [1, 1],
        "webhook_timeout_seconds": 2,
        "webhook_allow_private_urls": True,
    }  # receivers: 127.0.0.1
    return Settings.model_validate({**defaults, **values})


def endpoint(db: Db, project: str, url: str, events: list[str] | None = None) -> str:
    """A new endpoint of `project`; returns its secret."""
    with db.sessions() as session, session.begin():
        owner = projects.get_or_create_project(session, project)
        request = CreateWebhookEndpointRequest(url=url, event_types=events)
        return endpoints.create(session, owner, request, allow_private=True).secret


def job(db: Db, project: str = "alpha") -> str:
    """A new job of `project`, moved on to `running`."""
    with db.sessions() as session, session.begin():
        owner = projects.get_or_create_project(session, project)
        file = File(
            id=new_id("file"), project_id=owner.id, filename="t.jsonl", purpose="fine-tune",
            bytes=10, status="processed", format="chat", lines=3, created_at=now(),
        )  # fmt: skip
        session.add(file)
        body = CreateFineTuningJobRequest(model="whetstone-tiny", training_file=file.id)
        row = create_job(session, REGISTRY, owner, body)
        service.transition(session, row, JobStatus.QUEUED)
        service.transition(session, row, JobStatus.RUNNING)
        return row.id


def end(db: Db, job_id: str, how: str) -> None:
    """End the job as the scheduler or the API would, in one committed transaction."""
    with db.sessions() as session, session.begin():
        row = session.get(FineTuningJob, job_id)
        assert row is not None
        if how == "succeeded":
            service.mark_succeeded(session, row, trained_tokens=100)
        elif how == "failed":
            attempts.fail(session, row, "training_failed", "The trainer ran out of memory.")
        else:
            service.cancel(session, row)


def messages(db: Db, job_id: str) -> list[str]:
    with db.sessions() as session:
        stmt = select(FineTuningJobEvent.message).where(FineTuningJobEvent.job_id == job_id)
        return list(session.scalars(stmt))
