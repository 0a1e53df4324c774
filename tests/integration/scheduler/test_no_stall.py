"""One broken job never stalls the scheduler: a real `Scheduler` (SQLite, a local store, the
built-in tiny model and broken copies of it) fails the bad job with a clear error and
validates and launches the good job created right after it, in the same round.

The executor is an in-memory stand-in that records launches: these tests are about what
the scheduler does with a job, not about training it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contracts.local_store import LocalStore
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.executors import Attempt, AttemptState, LiveAttempt
from service.files.repository import file_key
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry
from service.scheduler import claim, failures
from service.scheduler.runner import Scheduler
from service.settings import Settings

GOOD = "whetstone-tiny"


@dataclass
class RecordingExecutor:
    """Launches nothing; every attempt stays running."""

    capacity: int = 4
    launched: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    def launch(self, attempt: Attempt) -> str:
        if attempt.job_id in self.refuse:
            raise RuntimeError("the executor fell over")
        self.launched.append(attempt.job_id)
        return f"fake:{attempt.job_id}:{attempt.number}"

    def poll(self, handle: str) -> AttemptState:
        return AttemptState.running()

    def kill(self, handle: str) -> None:
        pass

    def running(self) -> list[LiveAttempt]:
        return [
            LiveAttempt(f"fake:{job_id}:1", job_id, 1) for job_id in self.launched
        ]  # fmt: skip


@dataclass
class World:
    scheduler: Scheduler
    sessions: sessionmaker[Session]
    store: LocalStore
    registry: dict[str, BaseModelEntry]
    executor: RecordingExecutor
    models: Path

    def add_model(self, name: str, source: Path) -> Path:
        folder = self.models / name
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors"))
        self.registry[name] = BaseModelEntry(name=name, path=str(folder), max_seq_len=1024)
        return folder

    def create(self, model: str = GOOD) -> str:
        with self.sessions() as session:
            project = projects.get_or_create_project(session, "alpha")
            file = File(
                id=new_id("file"), project_id=project.id, filename="t.jsonl",
                purpose="fine-tune", bytes=1, status="processed", format="chat", lines=12,
                created_at=now(),
            )  # fmt: skip
            session.add(file)
            self.store.put_bytes(file_key(file.id), _dataset())
            body = CreateFineTuningJobRequest.model_validate(
                {"model": model, "training_file": file.id}
            )
            job = create_job(session, self.registry, project, body)
            session.commit()
            return job.id

    def job(self, job_id: str) -> FineTuningJob:
        with self.sessions() as session:
            job = session.get(FineTuningJob, job_id)
            assert job is not None
            return job

    def events(self, job_id: str) -> list[tuple[str, str]]:
        with self.sessions() as session:
            rows = session.execute(
                select(FineTuningJobEvent.level, FineTuningJobEvent.message)
                .where(FineTuningJobEvent.job_id == job_id)
                .order_by(FineTuningJobEvent.seq)
            ).all()
            return [(level, message) for level, message in rows]


def _dataset() -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": f"Q{i}?"},
                      {"role": "assistant", "content": f"A{i}."}]}
        for i in range(12)
    ]  # fmt: skip
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture()
def world(tmp_path: Path, base_model_dir: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    store = LocalStore(tmp_path / "objects")
    registry = {GOOD: BaseModelEntry(name=GOOD, path=str(base_model_dir), max_seq_len=1024)}
    executor = RecordingExecutor()
    settings = Settings(data_dir=tmp_path / "data")
    scheduler = Scheduler(settings, sessions, store, registry=registry, executor=executor)
    models = tmp_path / "models"
    models.mkdir()
    yield World(scheduler, sessions, store, registry, executor, models)
    engine.dispose()


def _set_template(folder: Path, template: str) -> None:
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = template
    config_path.write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)


def _bad_then_good(world: World, model: str) -> tuple[FineTuningJob, FineTuningJob]:
    """A job on `model`, a good job right after it, one round; both jobs after it."""
    bad_id = world.create(model)
    good_id = world.create()
    report = world.scheduler.tick()
    assert report.failed_stages == []
    good = world.job(good_id)
    assert good.status == "running", world.events(good_id)
    assert world.executor.launched == [good_id]
    return world.job(bad_id), good


@pytest.mark.parametrize(
    "template",
    ["{{ messages[0].content.nonexistent() }}", "{{ 1 / 0 }}"],
    ids=["undefined", "zero"],
)
def test_a_failing_chat_template_fails_its_job(
    world: World, base_model_dir: Path, template: str
) -> None:
    _set_template(world.add_model("bad-template", base_model_dir), template)
    bad, _good = _bad_then_good(world, "bad-template")
    assert bad.status == "failed"
    assert (bad.error_code, bad.error_param) == ("invalid_training_file", "training_file")
    assert bad.error_message is not None
    assert f"Training file {bad.training_file}, line 1: " in bad.error_message
    assert "template" in bad.error_message


def test_a_template_that_does_not_compile_fails_its_job(world: World, base_model_dir: Path) -> None:
    _set_template(world.add_model("bad-syntax", base_model_dir), "{% for %}")
    bad, _good = _bad_then_good(world, "bad-syntax")
    assert (bad.status, bad.error_code, bad.error_param) == (
        "failed",
        "model_not_available",
        "model",
    )
    assert bad.error_message is not None and bad.error_message.startswith("Base model bad-syntax:")


def test_a_missing_tokenizer_fails_its_job(world: World, base_model_dir: Path) -> None:
    folder = world.add_model("no-tokenizer", base_model_dir)
    (folder / "tokenizer.json").unlink()
    bad, _good = _bad_then_good(world, "no-tokenizer")
    assert (bad.status, bad.error_code, bad.error_param) == (
        "failed",
        "model_not_available",
        "model",
    )
    assert bad.error_message == f"Base model no-tokenizer: {folder / 'tokenizer.json'} is missing."


def test_a_corrupt_tokenizer_fails_its_job(world: World, base_model_dir: Path) -> None:
    folder = world.add_model("corrupt-tokenizer", base_model_dir)
    (folder / "tokenizer.json").write_bytes(b"\x00\xff garbage {")
    bad, _good = _bad_then_good(world, "corrupt-tokenizer")
    assert (bad.status, bad.error_code) == ("failed", "model_not_available")
    assert bad.error_message is not None
    assert bad.error_message.startswith(
        f"Base model corrupt-tokenizer: the tokenizer or chat template in {folder} cannot be loaded"
    )


def test_a_base_model_folder_deleted_after_the_job_was_created(
    world: World, base_model_dir: Path
) -> None:
    folder = world.add_model("vanished", base_model_dir)
    bad_id = world.create("vanished")
    good_id = world.create()
    shutil.rmtree(folder)
    world.scheduler.tick()
    bad = world.job(bad_id)
    assert (bad.status, bad.error_code) == ("failed", "model_not_available")
    assert bad.error_message == f"Base model vanished: folder {folder} is missing."
    assert world.job(good_id).status == "running"


def test_an_unexpected_error_fails_only_its_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.scheduler import prepare

    bad_id = world.create()
    good_id = world.create()
    bad_file = world.job(bad_id).training_file
    checked: list[str] = []
    check, resolve = prepare.check_chat_file, prepare.resolve

    def recording_check(*args: object, **kw: object):  # type: ignore[no-untyped-def]
        checked.append(str(kw["file_id"]))
        return check(*args, **kw)  # type: ignore[arg-type]

    def failing_resolve(given: dict[str, object], examples: int, *more):  # type: ignore[no-untyped-def]
        if checked[-1] == bad_file:
            raise KeyError("boom")
        return resolve(given, examples, *more)

    monkeypatch.setattr(prepare, "check_chat_file", recording_check)
    monkeypatch.setattr(prepare, "resolve", failing_resolve)
    world.scheduler.tick()
    bad = world.job(bad_id)
    assert (bad.status, bad.error_code, bad.error_param) == ("failed", "server_error", None)
    assert bad.error_message is not None and "KeyError: 'boom'" in bad.error_message
    assert bad.method["supervised"]["hyperparameters"]["n_epochs"] == "auto"
    assert world.job(good_id).status == "running"


def test_a_transient_error_is_retried_then_fails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.scheduler import prepare

    monkeypatch.setattr(failures, "RETRY_DELAYS", (0, 0))
    bad_id = world.create()
    good_id = world.create()
    original = prepare.check_chat_file

    def check(*args: object, **kw: object):  # type: ignore[no-untyped-def]
        if kw["file_id"] == world.job(bad_id).training_file:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        return original(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(prepare, "check_chat_file", check)
    world.scheduler.tick()
    assert world.job(good_id).status == "running"
    assert world.job(bad_id).status == "validating_files"
    world.scheduler.tick()
    world.scheduler.tick()
    bad = world.job(bad_id)
    assert (bad.status, bad.error_code) == ("failed", "server_error")
    assert bad.error_message is not None
    assert "failed 3 times" in bad.error_message and "database is locked" in bad.error_message
    warnings = [m for level, m in world.events(bad_id) if level == "warn"]
    assert len(warnings) == 2
    assert "database is locked" in warnings[0] and "(try 2 of 3)" in warnings[0]


def test_a_transient_error_waits_before_the_next_try(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.scheduler import prepare

    job_id = world.create()
    calls: list[str] = []

    def check(*args: object, **kw: object):  # type: ignore[no-untyped-def]
        calls.append("x")
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(prepare, "check_chat_file", check)
    world.scheduler.tick()
    world.scheduler.tick()
    assert len(calls) == 1  # the second round waits for the retry delay
    job = world.job(job_id)
    assert job.status == "validating_files" and job.attempt == 1
    assert job.lease_expires_at is not None and job.lease_expires_at >= now() + 4


def test_build_spec_raising_fails_only_its_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_id = world.create()
    good_id = world.create()
    original = claim.build_spec

    def build_spec(ctx, session, job, number):  # type: ignore[no-untyped-def]
        if job.id == bad_id:
            raise ValueError("a field the JobSpec refuses")
        return original(ctx, session, job, number)

    monkeypatch.setattr(claim, "build_spec", build_spec)
    report = world.scheduler.tick()
    assert report.launched == [good_id]
    bad = world.job(bad_id)
    assert (bad.status, bad.error_code) == ("failed", "server_error")
    assert bad.error_message is not None and "ValueError: a field the JobSpec" in bad.error_message
    assert bad.spec is None and bad.executor_handle is None  # the claim was rolled back


def test_a_base_model_gone_from_the_registry_at_claim(world: World, base_model_dir: Path) -> None:
    world.add_model("leaving", base_model_dir)
    bad_id = world.create("leaving")
    good_id = world.create()
    world.scheduler.ctx.executor = RecordingExecutor(capacity=0)  # validate only
    world.scheduler.tick()
    assert world.job(bad_id).status == "queued"
    del world.registry["leaving"]
    world.scheduler.ctx.executor = world.executor
    report = world.scheduler.tick()
    assert report.launched == [good_id]
    bad = world.job(bad_id)
    assert (bad.status, bad.error_code, bad.error_param) == (
        "failed",
        "model_not_available",
        "model",
    )
    assert bad.error_message == "Base model leaving is no longer in this server's registry."


def test_a_launch_raising_is_retried_then_fails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failures, "RETRY_DELAYS", (0, 0))  # every try in the same round
    bad_id = world.create()
    good_id = world.create()
    world.executor.refuse.add(bad_id)
    report = world.scheduler.tick()
    assert report.launched == [good_id]
    bad = world.job(bad_id)
    assert (bad.status, bad.error_code, bad.attempt, bad.executor_handle) == (
        "failed", "server_error", 3, None,
    )  # fmt: skip
    assert bad.error_message is not None
    assert bad.error_message.startswith(
        "The job could not be started in 3 attempts; the last one failed with RuntimeError: "
        "the executor fell over."
    )
    retries = [m for level, m in world.events(bad_id) if "could not be started (" in m]
    assert retries == [
        f"Attempt {n} of 3 could not be started (RuntimeError: the executor fell over); "
        "the job is queued to try again in 0 s"
        for n in (1, 2)
    ]
    assert world.job(good_id).status == "running"


def test_a_launch_raising_waits_before_the_next_try(world: World) -> None:
    bad_id = world.create()
    world.executor.refuse.add(bad_id)
    world.scheduler.tick()
    world.scheduler.tick()
    bad = world.job(bad_id)
    assert (bad.status, bad.attempt) == ("queued", 1)
    assert bad.lease_expires_at is not None and bad.lease_expires_at >= now() + 4


def test_a_watch_raising_does_not_stop_the_round(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.create()
    world.scheduler.tick()
    assert world.job(first).status == "running"

    def poll(handle: str) -> AttemptState:
        raise KeyError(handle)

    monkeypatch.setattr(world.executor, "poll", poll)
    second = world.create()
    report = world.scheduler.tick()
    assert report.failed_stages == []
    assert report.launched == [second]
    assert world.job(first).status == "running"  # its lease has not run out yet


def test_a_watch_that_keeps_raising_ends_the_attempt_once_its_lease_runs_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = world.create()
    world.scheduler.tick()

    def poll(handle: str) -> AttemptState:
        raise KeyError(handle)

    monkeypatch.setattr(world.executor, "poll", poll)
    with world.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        job.lease_expires_at = now() - 1
        session.commit()
    world.scheduler.ctx.executor.capacity = 0  # type: ignore[misc]  # no relaunch this round
    world.scheduler.tick()
    job = world.job(job_id)
    assert (job.status, job.executor_handle) == ("queued", None)
    assert world.events(job_id)[-1][1].startswith(
        "Training attempt 1 ended because the scheduler could not watch it (KeyError: "
    )


def test_continued_training_rechecks_the_parent_model_at_claim(world: World) -> None:
    """The parent model was the project's when the job was created, and deleted before the
    job was claimed: the job fails with `model_not_available` instead of training on."""
    from service.db.tables import FineTunedModel

    parent_job = world.create()
    with world.sessions() as session:
        alpha = projects.get_or_create_project(session, "alpha")
        name = "ft:whetstone-tiny:alpha::parent1"
        session.add(
            FineTunedModel(
                id=name, project_id=alpha.id, job_id=parent_job, kind="final",
                base_model=GOOD, adapter_prefix=f"jobs/{parent_job}/final/adapter/",
                created_at=now(),
            )
        )  # fmt: skip
        session.commit()
    child = world.create(name)
    world.scheduler.ctx.executor = RecordingExecutor(capacity=0)  # validate only
    world.scheduler.tick()
    assert world.job(child).status == "queued"
    with world.sessions() as session:
        model = session.get(FineTunedModel, name)
        assert model is not None
        model.deleted_at = now()
        session.commit()
    world.scheduler.ctx.executor = world.executor
    report = world.scheduler.tick()
    assert child not in report.launched and parent_job in report.launched
    job = world.job(child)
    assert (job.status, job.error_code, job.error_param) == (
        "failed",
        "model_not_available",
        "model",
    )
    assert job.error_message is not None and name in job.error_message
