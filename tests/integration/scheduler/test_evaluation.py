"""The evaluation worker's policy around the answers: a report as a result file with its
event (validation file, held-out lines, a source model's answers), a vLLM that is down
leaving the job `succeeded` with a warning, and an evaluation whose scheduler died taken
again. Postgres, a local store, and a stand-in for vLLM's chat endpoint (an HTTP server that
answers from a table): the real vLLM and trainer run in tests/e2e/test_eval_report.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts import layout
from contracts.local_store import LocalStore
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.db.tables import File, FineTuningJob, FineTuningJobEvent
from service.files.repository import file_key
from service.fine_tuning import service as jobs
from service.fine_tuning.status import JobStatus
from service.hashing import cache_salt
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.models.vllms import VllmRoutes
from service.scheduler.context import SchedulerContext
from service.scheduler.evaluation import Evaluator
from service.settings import Settings
from tests.conftest import free_port

BASE = "whetstone-tiny"
QA = [(f"Q{i}?", f"A{i}.") for i in range(6)]


class StandInVllm(BaseHTTPRequestHandler):
    """The fine-tuned model knows every answer, the base model none. `asked` keeps each
    request's body."""

    asked: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.asked.append(body)
        question = body["messages"][-1]["content"]
        known = dict(QA)
        text = known[question] if body["model"].startswith("ft:") else "I do not know."
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out.encode())

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class World:
    sessions: sessionmaker[Session]
    store: LocalStore
    tmp: Path

    def evaluator(self, vllm_url: str, **settings: Any) -> Evaluator:
        ctx = SchedulerContext(
            settings=Settings(data_dir=self.tmp, **settings), sessions=self.sessions,
            store=self.store, registry={},
            executor=None,  # type: ignore[arg-type]  # the evaluator launches nothing
        )  # fmt: skip
        return Evaluator(ctx, VllmRoutes({BASE: vllm_url}))

    def add_file(self, project_id: str, data: bytes) -> str:
        with self.sessions() as session:
            file = File(
                id=new_id("file"), project_id=project_id, filename="d.jsonl",
                purpose="fine-tune", bytes=len(data), status="processed", format="chat",
                lines=data.count(b"\n"), created_at=now(),
            )  # fmt: skip
            session.add(file)
            session.commit()
        self.store.put_bytes(file_key(file.id), data)
        return file.id

    def succeeded_job(self, validation: bool = True, **columns: Any) -> str:
        """A job as the scheduler leaves it once its trainer finished."""
        with self.sessions() as session:
            project = projects.get_or_create_project(session, "alpha")
            session.commit()
        data = _dataset()
        train = self.add_file(project.id, data)
        job_id = new_id("ftjob")
        with self.sessions() as session:
            job = FineTuningJob(
                id=job_id, project_id=project.id, created_at=now(), updated_at=now(),
                status="running", model=BASE, base_model=BASE, training_file=train,
                validation_file=self.add_file(project.id, data) if validation else None,
                method={"type": "supervised"}, seed=1, result_files=[],
                output_model=f"ft:{BASE}:alpha::{job_id[6:14]}", **columns,
            )  # fmt: skip
            session.add(job)
            jobs.mark_succeeded(session, job, trained_tokens=10, result_files=["file-csv"])
            session.commit()
        self.store.put_bytes(
            layout.example_losses_key(job_id), b'{"examples": [{"line": 3, "loss": 2.5}]}'
        )
        return job_id

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

    def report(self, job_id: str) -> dict[str, Any]:
        report_id = self.job(job_id).result_files[-1]
        return dict(json.loads(self.store.get_bytes(file_key(report_id))))


def _dataset() -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in QA
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture()
def world(tmp_path: Path, own_postgres_url: str) -> Iterator[World]:
    engine = make_engine(own_postgres_url)
    upgrade(engine)
    yield World(make_sessionmaker(engine), LocalStore(tmp_path / "objects"), tmp_path)
    engine.dispose()


@pytest.fixture()
def vllm_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInVllm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_report_is_a_result_file_with_an_event(world: World, vllm_url: str) -> None:
    job_id = world.succeeded_job()
    with world.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        answers = world.add_file(job.project_id, b'{"index": 0, "answer": "A0."}\n'
                                 b'{"index": 1, "answer": "wrong"}\n')  # fmt: skip
        job.job_metadata = {"source_answers_file": answers, "source_model": "gpt-4o-mini"}
        session.commit()
    assert world.evaluator(vllm_url).run_pending() == [job_id]

    job = world.job(job_id)
    assert job.status == "succeeded" and job.evaluation == "done"
    assert job.result_files[0] == "file-csv" and len(job.result_files) == 2
    report = world.report(job_id)
    assert report["examples"] == 6 and report["data"] == "validation_file"
    kinds = {m["kind"]: m for m in report["models"]}
    assert kinds["fine_tuned"]["exact_match"] == 1.0 and kinds["base"]["exact_match"] == 0.0
    assert kinds["source"]["model"] == "gpt-4o-mini" and kinds["source"]["matches"] == 1
    assert report["outliers"] == [{"line": 3, "loss": 2.5}]
    assert report["samples"][0]["fine_tuned"] == "A0." and report["samples"][0]["source"] == "A0."
    assert report["seconds"] >= 0
    assert world.events(job_id)[-1] == (
        "info", "Evaluation: exact match 6/6 fine-tuned, 0/6 base, 1/6 gpt-4o-mini on the "
        "validation file; against the source: 0 lost, 5 gained",
    )  # fmt: skip
    flips = report["flips"]
    assert (flips["lost"], flips["gained"]) == (0, 5)
    assert flips["examples"][0]["source"] == "wrong" and flips["examples"][0]["flip"] == "gained"
    assert world.evaluator(vllm_url).run_pending() == []  # done once


def test_the_settings_bound_the_evaluation(world: World, vllm_url: str) -> None:
    """At most `eval_max_examples` examples, greedy answers of at most `eval_max_tokens`;
    `eval_enabled=false` leaves every job without a report."""
    StandInVllm.asked.clear()
    job_id = world.succeeded_job()
    world.evaluator(vllm_url, eval_max_examples=4, eval_max_tokens=7).run_pending()
    report = world.report(job_id)
    assert report["examples"] == 4 and len(report["samples"]) == 4
    assert [s["reference"] for s in report["samples"]] == ["A0.", "A1.", "A2.", "A3."]
    assert len(StandInVllm.asked) == 2 * 4  # base and fine-tuned, 4 prompts each
    assert {(b["max_tokens"], b["temperature"]) for b in StandInVllm.asked} == {(7, 0)}
    # Its prompts share vLLM's prefix cache with its own project's requests only.
    project_id = world.job(job_id).project_id
    assert {b["cache_salt"] for b in StandInVllm.asked} == {cache_salt(project_id)}

    StandInVllm.asked.clear()
    off = world.succeeded_job()
    assert world.evaluator(vllm_url, eval_enabled=False).run_pending() == []
    assert world.job(off).evaluation == "skipped" and world.job(off).result_files == ["file-csv"]
    assert StandInVllm.asked == []


def test_held_out_lines_are_the_evaluation_without_a_validation_file(
    world: World, vllm_url: str
) -> None:
    job_id = world.succeeded_job(validation=False, spec=json.dumps({
        "job_id": "x", "base_model": {"name": BASE, "path": "/m", "max_seq_len": 64},
        "training_file": "file:///t", "output": "file:///o/", "held_out_lines": [2, 5],
    }))  # fmt: skip
    world.evaluator(vllm_url).run_pending()
    report = world.report(job_id)
    assert report["data"] == "held_out" and report["examples"] == 2
    assert [s["reference"] for s in report["samples"]] == ["A1.", "A4."]
    assert world.events(job_id)[-1][1] == (
        "Evaluation: exact match 2/2 fine-tuned, 0/2 base on 2 held-out training examples"
    )


def test_a_vllm_that_is_down_leaves_the_job_succeeded_with_a_warning(world: World) -> None:
    job_id = world.succeeded_job()
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    waiting = world.evaluator(down, eval_wait_seconds=600)
    assert waiting.run_pending() == []  # it waits for vLLM to come up
    assert world.job(job_id).evaluation is None

    assert world.evaluator(down, eval_wait_seconds=0).run_pending() == [job_id]
    job = world.job(job_id)
    assert job.status == JobStatus.SUCCEEDED.value and job.evaluation == "failed"
    assert job.result_files == ["file-csv"]
    level, message = world.events(job_id)[-1]
    assert level == "warn" and message.startswith("Evaluation failed: the model server at")


def test_an_evaluation_whose_scheduler_died_runs_again(world: World, vllm_url: str) -> None:
    job_id = world.succeeded_job()
    with world.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        job.evaluation, job.evaluation_lease_expires_at = "running", now() + 60
        session.commit()
    assert world.evaluator(vllm_url).run_pending() == []  # its lease still runs
    with world.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        job.evaluation_lease_expires_at = now() - 1
        session.commit()
    assert world.evaluator(vllm_url).run_pending() == [job_id]
    assert world.job(job_id).evaluation == "done"


def test_a_source_answers_file_is_streamed_and_capped(
    world: World, vllm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tenant's file is never read whole (`get_bytes` of a file is refused here); a file
    past `eval_source_answers_max_bytes` scores no source model, says why, and the rest of
    the report is made as usual; a file of one endless line is refused the same way."""
    whole_reads: list[str] = []
    read_whole = world.store.get_bytes

    def get_bytes(key: str) -> bytes:
        if key.startswith("files/"):
            whole_reads.append(key)
        return read_whole(key)

    monkeypatch.setattr(world.store, "get_bytes", get_bytes)
    lines = b"".join(b'{"index": %d, "answer": "A%d."}\n' % (i, i) for i in range(200))
    endless = b'{"index": 0, "answer": "' + b"x" * (3 * 1024 * 1024)
    answer_files = []
    for data, why in ((lines, "more than 2000 bytes"), (endless, "longer than")):
        job_id = world.succeeded_job()
        with world.sessions() as session:
            job = session.get(FineTuningJob, job_id)
            assert job is not None
            answers = world.add_file(job.project_id, data)
            answer_files.append(answers)
            job.job_metadata = {"source_answers_file": answers, "source_model": "gpt-4o-mini"}
            session.commit()
        evaluator = world.evaluator(vllm_url, eval_source_answers_max_bytes=2000)
        assert evaluator.run_pending() == [job_id]
        kinds = {m["kind"]: m for m in world.report(job_id)["models"]}
        assert why in kinds["source"]["error"], kinds["source"]
        assert kinds["fine_tuned"]["exact_match"] == 1.0
    small = world.succeeded_job()
    with world.sessions() as session:
        job = session.get(FineTuningJob, small)
        assert job is not None
        answers = world.add_file(job.project_id, b"".join(lines.splitlines(True)[:6]))
        answer_files.append(answers)
        job.job_metadata = {"source_answers_file": answers, "source_model": "gpt-4o-mini"}
        session.commit()
    world.evaluator(vllm_url, eval_source_answers_max_bytes=2000).run_pending()
    kinds = {m["kind"]: m for m in world.report(small)["models"]}
    assert kinds["source"]["matches"] == 6
    assert [k for k in whole_reads if k.endswith(tuple(answer_files))] == []
