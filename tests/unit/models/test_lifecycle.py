"""A model appears (`publish`) and disappears (`delete`) in one place, each step in its turn:
row, pointer, then the warm start once committed; pointer, row, access cache, then vLLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from contracts.layout import final_adapter_prefix
from contracts.local_store import LocalStore
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTunedModel, FineTuningJob
from service.errors import NotFound, PermissionDenied
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.models import lifecycle
from service.models.pointers import is_published
from service.registry import BaseModelEntry

BASE = "whetstone-tiny"
REGISTRY = {BASE: BaseModelEntry(name=BASE, path="/nonexistent")}


class Store(LocalStore):
    """A local store that notes, as each key is deleted, whether the watched row was live."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.watched: FineTunedModel | None = None
        self.deleted: list[tuple[str, bool]] = []

    def delete(self, key: str) -> None:
        live = self.watched is not None and self.watched.deleted_at is None
        self.deleted.append((key, live))
        super().delete(key)


class Steps:
    """Stands in for the chat access cache and the adapter control; notes each call."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[str, str, bool]] = []  # (what, model, pointer there then)

    def warm_start_later(self, model: str, base_model: str) -> None:
        self.calls.append(("warm", model, is_published(self.store, model)))

    def forget_model(self, model: str) -> None:
        self.calls.append(("forget", model, is_published(self.store, model)))

    def unload_deleted(self, model: str) -> bool:
        self.calls.append(("unload", model, is_published(self.store, model)))
        return True


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "objects")


def _job(session: Session, project: str = "alpha") -> FineTuningJob:
    owner = projects.get_or_create_project(session, project)
    file = File(
        id=new_id("file"), project_id=owner.id, filename="t.jsonl", purpose="fine-tune",
        bytes=10, status="processed", format="chat", lines=3, created_at=now(),
    )  # fmt: skip
    session.add(file)
    body = CreateFineTuningJobRequest.model_validate({"model": BASE, "training_file": file.id})
    return create_job(session, REGISTRY, owner, body)


def test_publish_writes_the_row_once_then_the_pointer_and_warms_after_commit(
    sessions: sessionmaker[Session], store: Store
) -> None:
    steps = Steps(store)
    with sessions() as session:
        job = _job(session)
        name, prefix = job.output_model, final_adapter_prefix(job.id)
        row = lifecycle.publish(session, store, job, name, "final", prefix, adapters=steps)  # type: ignore[arg-type]
        assert (row.kind, row.base_model, row.adapter_prefix) == ("final", BASE, prefix)
        assert is_published(store, name) and steps.calls == []  # not before the commit
        session.commit()
        assert steps.calls == [("warm", name, True)]
        # A retried report: the same row, the pointer written again, no second warm start
        # without `adapters`.
        assert lifecycle.publish(session, store, job, name, "final", prefix) is row
        session.commit()
        assert steps.calls == [("warm", name, True)]
        assert session.query(FineTunedModel).count() == 1


def test_a_rolled_back_publish_warms_nothing(sessions: sessionmaker[Session], store: Store) -> None:
    steps = Steps(store)
    with sessions() as session:
        job = _job(session)
        session.commit()
        name, prefix = job.output_model, final_adapter_prefix(job.id)
        lifecycle.publish(session, store, job, name, "final", prefix, adapters=steps)  # type: ignore[arg-type]
        session.rollback()
        session.commit()
        assert steps.calls == [] and session.get(FineTunedModel, name) is None


def test_delete_goes_pointer_row_cache_then_vllm(
    sessions: sessionmaker[Session], store: Store
) -> None:
    steps = Steps(store)
    with sessions() as session:
        job = _job(session)
        name = job.output_model
        prefix = final_adapter_prefix(job.id)
        store.watched = lifecycle.publish(session, store, job, name, "final", prefix)
        session.commit()
        project = projects.get_or_create_project(session, "alpha")
        answer = lifecycle.delete(
            session,
            store,
            REGISTRY,
            project,
            name,
            access=steps,
            adapters=steps,  # type: ignore[arg-type]
        )
        assert (answer.id, answer.deleted) == (name, True)
        # The pointer went while the row was still live; the cache and vLLM came after it.
        assert [live for _, live in store.deleted] == [True]
        assert steps.calls == [("forget", name, False), ("unload", name, False)]
        row = session.get(FineTunedModel, name)
        assert row is not None and row.deleted_at is not None
        with pytest.raises(NotFound):  # deleted: as unknown
            lifecycle.delete(session, store, REGISTRY, project, name)


def test_delete_refuses_base_models_and_other_projects_models(
    sessions: sessionmaker[Session], store: Store
) -> None:
    with sessions() as session:
        job = _job(session, "beta")
        name = job.output_model
        lifecycle.publish(session, store, job, name, "final", final_adapter_prefix(job.id))
        alpha = projects.get_or_create_project(session, "alpha")
        with pytest.raises(PermissionDenied):
            lifecycle.delete(session, store, REGISTRY, alpha, BASE)
        with pytest.raises(NotFound):
            lifecycle.delete(session, store, REGISTRY, alpha, name)
        assert is_published(store, name) and store.deleted == []
