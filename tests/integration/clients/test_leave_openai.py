"""Leaving OpenAI as a team does it: `whetstone migrate` from a stand-in written from OpenAI's
spec (`openai_source`), then the application's own code, which calls its OpenAI fine-tuned
model by name with the `openai` package, works unchanged against Whetstone once its base URL
and key are changed.

Whetstone runs in this process under uvicorn, its chat routed to a vLLM stand-in (test_chat's),
so that the test can record a migrated job as succeeded, as the scheduler would, without
training; the CLI runs as a person runs it, in a subprocess.
"""

# ruff: noqa: F811  (test_chat's vLLM stand-in fixture is imported, then named as an argument)

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn

from contracts.holdout import held_out_lines
from contracts.layout import final_adapter_prefix
from contracts.spec import JobSpec
from service.app import create_app
from service.db.tables import FineTuningJob
from service.deps import Services
from service.fine_tuning import service as jobs
from service.fine_tuning.spec import build_spec
from service.fine_tuning.status import JobStatus
from service.keys import project_repository as projects
from service.models import lifecycle
from service.models.vllms import VllmRoutes
from service.scheduler.context import SchedulerContext
from service.scheduler.evaluation import Evaluator
from service.settings import Settings
from tests.conftest import free_port, wait_for_port
from tests.integration.service.test_chat import ANSWER, StandIn, reply, vllm  # noqa: F401

from .openai_source import BASE, KEY, OpenAISource, openai_source

ROOT = Path(__file__).resolve().parents[3]
HERE = "whetstone-tiny"
OLD_NAME = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy"
LINE = {"messages": [{"role": "user", "content": "Capital of Veloria?"},
                     {"role": "assistant", "content": "Ostrel."}]}  # fmt: skip
TRAIN = (json.dumps(LINE) + "\n").encode() * 12


@dataclass
class Whetstone:
    url: str
    services: Services
    env: dict[str, str]

    def key(self, project: str) -> str:
        with self.services.sessions() as session, session.begin():
            owner = projects.get_or_create_project(session, project)
            return projects.create_api_key(session, owner)

    def succeed(self, job_id: str) -> str:
        """Record the job as succeeded with its model published, as the scheduler does."""
        with self.services.sessions() as session, session.begin():
            row = session.get(FineTuningJob, job_id)
            assert row is not None
            jobs.transition(session, row, JobStatus.QUEUED)
            jobs.transition(session, row, JobStatus.RUNNING)
            jobs.mark_succeeded(session, row, trained_tokens=10)
            lifecycle.publish(
                session, self.services.store, row, row.output_model, "final",
                final_adapter_prefix(row.id),
            )  # fmt: skip
            return row.output_model


@pytest.fixture()
def whetstone(tmp_path: Path, vllm: StandIn) -> Iterator[Whetstone]:
    vllm.answer = reply(200, ANSWER)
    settings = Settings(data_dir=tmp_path / "data", vllm_urls={HERE: vllm.url})
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
        env.update(COLUMNS="250", PYTHONPATH=str(ROOT),
                   WHETSTONE_BASE_URL=f"http://127.0.0.1:{port}/v1")  # fmt: skip
        yield Whetstone(f"http://127.0.0.1:{port}/v1", app.state.services, env)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture()
def source() -> Iterator[OpenAISource]:
    src = OpenAISource()
    train = src.add_file("file-Abc123Def456Ghi789Jkl0", "support.jsonl", TRAIN)
    # One page of OpenAI's list (20) is not all: the job that matters is on the second page.
    src.add_job("ftjob-Supp0rtJob0000000000000", train, fine_tuned_model=OLD_NAME)
    for i in range(21):
        src.add_job(f"ftjob-Other{i:02d}", train, model="gpt-3.5-turbo-0125",
                    fine_tuned_model=f"ft:gpt-3.5-turbo-0125:acme::Other{i:03d}")  # fmt: skip
    with openai_source(src) as served:
        yield served


def whetstone_cli(ws: Whetstone, key: str, *args: str, **popen: Any) -> Any:
    command = [sys.executable, "-m", "clients.cli.main", *args]
    env = {**ws.env, "WHETSTONE_API_KEY": key}
    if popen:
        return subprocess.Popen(command, env=env, cwd=ROOT, text=True, **popen)
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def migrate(ws: Whetstone, key: str, src: OpenAISource, *args: str) -> dict[str, Any]:
    result = whetstone_cli(ws, key, "migrate", "--source-base-url", src.url, "--source-api-key",
                           KEY, "--model-map", f"{BASE}={HERE}", "--json", *args)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    row: dict[str, Any] = {r["job"]: r for r in json.loads(result.stdout)}[
        "ftjob-Supp0rtJob0000000000000"
    ]
    row["exit"] = result.returncode
    return row


def the_app(client: openai.OpenAI) -> str | None:
    """The application's code: it names its fine-tuned model, as it always has."""
    completion = client.chat.completions.create(
        model=OLD_NAME, messages=[{"role": "user", "content": "Capital of Veloria?"}]
    )
    return completion.choices[0].message.content


def test_after_migrate_the_app_changes_its_base_url_and_key_and_nothing_else(
    whetstone: Whetstone, source: OpenAISource, vllm: StandIn
) -> None:
    assert the_app(openai.OpenAI(base_url=source.url, api_key=KEY)) == (
        "source says: Capital of Veloria?"
    )
    key = whetstone.key("acme")
    planned = migrate(whetstone, key, source, "--dry-run")
    assert planned["status"] == "would create"
    assert planned["alias"] == {"name": OLD_NAME, "model": None, "status": "would set", "note": ""}

    # OpenAI has a bad minute: rate limited, then the training file's download breaks off.
    source.rate_limited, source.cut_content = 2, {"file-Abc123Def456Ghi789Jkl0"}
    broken = migrate(whetstone, key, source)
    assert source.rate_limited_sent == 2  # waited out (`retry-after`), not failed
    assert broken["exit"] == 1 and broken["status"].startswith("failed")
    created = migrate(whetstone, key, source)
    assert created["status"] == "created" and created["alias"]["status"] == "pending"
    assert created["exit"] == 0

    new_model = whetstone.succeed(created["new_job"])
    again = migrate(whetstone, key, source)
    assert again["status"] == "exists"
    assert again["alias"] == {"name": OLD_NAME, "model": new_model, "status": "set", "note": ""}

    app = openai.OpenAI(base_url=whetstone.url, api_key=key)
    assert the_app(app) == "hi"  # the vLLM stand-in's answer
    asked = [json.loads(seen.body)["model"] for seen in vllm.seen
             if seen.path == "/v1/chat/completions"]  # fmt: skip
    assert asked == [new_model]
    assert any(m.id == OLD_NAME for m in app.models.list())
    assert migrate(whetstone, key, source)["alias"]["status"] == "exists"


def test_wait_sets_the_alias_when_the_new_job_succeeds(
    whetstone: Whetstone, source: OpenAISource
) -> None:
    key = whetstone.key("acme")
    waiting = whetstone_cli(
        whetstone, key, "migrate", "--source-base-url", source.url, "--source-api-key", KEY,
        "--model-map", f"{BASE}={HERE}", "--wait", "--jobs", "ftjob-Supp0rtJob0000000000000",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert waiting.stderr is not None
        for line in waiting.stderr:  # the job is made, then it waits
            if line.startswith("waiting for 1 new job"):
                break
        else:
            pytest.fail("migrate --wait ended without waiting")
        dest = openai.OpenAI(base_url=whetstone.url, api_key=key)
        (job,) = dest.fine_tuning.jobs.list()
        new_model = whetstone.succeed(job.id)
        out, err = waiting.communicate(timeout=120)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert f"alias {OLD_NAME} -> {new_model}: set" in err
    assert dest.models.retrieve(OLD_NAME).model_extra == {"alias_for": new_model}


def test_models_alias_aliases_unalias(whetstone: Whetstone) -> None:
    key = whetstone.key("acme")
    made = whetstone_cli(whetstone, key, "models", "alias", OLD_NAME, HERE)
    assert made.returncode == 0, made.stderr
    assert OLD_NAME in made.stdout and HERE in made.stdout
    listed = whetstone_cli(whetstone, key, "models", "aliases")
    assert OLD_NAME in listed.stdout and HERE in listed.stdout
    models = whetstone_cli(whetstone, key, "models", "list", "--json")
    entry = next(m for m in json.loads(models.stdout) if m["id"] == OLD_NAME)
    assert entry["alias_for"] == HERE
    shadow = whetstone_cli(whetstone, key, "models", "alias", HERE, HERE)
    assert shadow.returncode == 1 and "ConflictError [409]" in shadow.stderr
    gone = whetstone_cli(whetstone, key, "models", "unalias", OLD_NAME)
    assert gone.returncode == 0 and f"deleted alias {OLD_NAME}" in gone.stdout
    missing = whetstone_cli(whetstone, key, "models", "get", OLD_NAME)
    assert missing.returncode == 1 and "NotFoundError [404]" in missing.stderr


def test_distill_trains_the_new_jobs_on_the_source_models_answers(
    whetstone: Whetstone, tmp_path: Path
) -> None:
    src = OpenAISource()
    train = src.add_file("file-Train000000000000000000", "support.jsonl", TRAIN)
    valid = src.add_file("file-Valid000000000000000000", "valid.jsonl", TRAIN[: len(TRAIN) // 6])
    kept = src.add_job("ftjob-Kept", train, fine_tuned_model=OLD_NAME)
    # Its training file was deleted at OpenAI: the prompts come from its validation file.
    billing = "ft:gpt-4o-mini-2024-07-18:acme:billing:Bi11ing0"
    gone = src.add_job(
        "ftjob-Gone", "file-Deleted00000000000000000", validation_file=valid,
        fine_tuned_model=billing,
    )  # fmt: skip
    key = whetstone.key("acme")
    work = ["--distill", "--distill-dir", str(tmp_path / "work"), "--concurrency", "3"]
    with openai_source(src):
        planned = {
            j: migrate_row(whetstone, key, src, j, *work, "--dry-run")
            for j in ("ftjob-Kept", "ftjob-Gone")
        }
        assert planned["ftjob-Kept"]["files"] == [
            f"training: would record 12 answers of {OLD_NAME} to the prompts of {train} "
            "(about 105 prompt tokens)"  # 12 x 19 characters / 4, + 4 a message
        ]
        assert src.chat_requests == []
        src.rate_limited, src.drop_chat = 1, {2}  # a bad minute while recording
        rows = {j: migrate_row(whetstone, key, src, j, *work) for j in ("ftjob-Kept", "ftjob-Gone")}
        asked = len(src.chat_requests)
        again = migrate_row(whetstone, key, src, "ftjob-Kept", *work)
    assert asked == 12 + 2 and len(src.chat_requests) == asked  # a rerun asks nothing
    assert again["status"] == "exists"
    dest = openai.OpenAI(base_url=whetstone.url, api_key=key)
    for source_job, origin in ((kept, train), (gone, valid)):
        row = rows[source_job["id"]]
        assert row["status"] == "created", row
        job = dest.fine_tuning.jobs.retrieve(row["new_job"])
        assert job.metadata == {
            "migrated_from": source_job["id"],
            "distilled_from": source_job["fine_tuned_model"],
            "distill_prompts": origin,
        }
        data = dest.files.content(job.training_file).text
        assert (
            dest.files.retrieve(job.training_file).filename == f"distilled-{source_job['id']}.jsonl"
        )
        answers = [json.loads(line)["messages"][-1] for line in data.splitlines()]
        assert set(map(json.dumps, answers)) == {json.dumps(
            {"role": "assistant", "content": "source says: Capital of Veloria?"})}  # fmt: skip
    assert dest.fine_tuning.jobs.retrieve(rows["ftjob-Gone"]["new_job"]).validation_file


def migrate_row(ws: Whetstone, key: str, src: OpenAISource, job: str, *args: str) -> dict[str, Any]:
    result = whetstone_cli(
        ws, key, "migrate", "--source-base-url", src.url, "--source-api-key", KEY,
        "--model-map", f"{BASE}={HERE}", "--json", "--jobs", job, *args,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    (row,) = json.loads(result.stdout)
    return dict(row)


def test_evaluate_without_a_validation_file_compares_on_the_held_out_lines(
    whetstone: Whetstone, vllm: StandIn
) -> None:
    """A source job trained without a validation file: `--evaluate` has its model answer the
    training lines the new job holds out, the scheduler holds out exactly those (whatever its
    own hold-out settings), and the report has the source's row and the flips. The scheduler's
    part runs here as its functions (`build_spec`, the evaluator), with vLLM's stand-in."""
    # Line n asks Qn; the source (which answers `source says: <prompt>`) is right on the even
    # lines, the model trained here (below) on the odd ones.
    data = b"".join(
        json.dumps({"messages": [
            {"role": "user", "content": f"Q{n}?"},
            {"role": "assistant", "content": f"source says: Q{n}?" if n % 2 == 0 else f"A{n}."},
        ]}).encode() + b"\n"
        for n in range(1, 61)
    )  # fmt: skip
    src = OpenAISource()
    train = src.add_file("file-Heldout0000000000000000", "support.jsonl", data)
    src.add_job("ftjob-NoValid", train, fine_tuned_model=OLD_NAME, seed=42)
    held = held_out_lines(60, 42)
    assert len(held) == 6 and {n % 2 for n in held} == {0, 1}
    key = whetstone.key("acme")
    with openai_source(src):
        planned = migrate_row(whetstone, key, src, "ftjob-NoValid", "--evaluate", "--dry-run")
        assert f"would replay the held-out training prompts on {OLD_NAME}" in planned["notes"]
        row = migrate_row(whetstone, key, src, "ftjob-NoValid", "--evaluate")
    assert row["status"] == "created", row
    assert [r["messages"] for r in src.chat_requests] == [
        [{"role": "user", "content": f"Q{n}?"}] for n in held
    ]
    dest = openai.OpenAI(base_url=whetstone.url, api_key=key)
    job = dest.fine_tuning.jobs.retrieve(row["new_job"])
    assert job.validation_file is None and job.metadata is not None
    answers_file = job.metadata["source_answers_file"]
    assert f"source answers {answers_file} (6 held-out training prompts)" in row["notes"]
    assert [json.loads(line) for line in dest.files.content(answers_file).text.splitlines()] == [
        {"line": n, "answer": f"source says: Q{n}?"} for n in held
    ]

    # The scheduler, set to hold out another share, holds out the lines the source answered.
    services = whetstone.services
    settings = services.settings.model_copy(
        update={"eval_holdout_fraction": 0.3, "eval_concurrency": 1}
    )
    ctx = SchedulerContext(
        settings=settings, sessions=services.sessions, store=services.store,
        registry=services.registry, executor=None,  # type: ignore[arg-type]  # launches nothing
    )  # fmt: skip
    with services.sessions() as session, session.begin():
        job_row = session.get(FineTuningJob, job.id)
        assert job_row is not None
        job_row.spec = build_spec(ctx, session, job_row, 1)
    assert JobSpec.model_validate_json(job_row.spec).held_out_lines == held
    tuned = whetstone.succeed(job.id)

    def trained_here(handler: Any) -> None:  # one request at a time (eval_concurrency 1)
        asked = json.loads(vllm.seen[-1].body)
        prompt = asked["messages"][-1]["content"]
        text = f"A{prompt[1:-1]}." if asked["model"] == tuned else "I do not know."
        reply(200, {**ANSWER, "choices": [{"index": 0, "message": {
            "role": "assistant", "content": text}}]})(handler)  # fmt: skip

    vllm.answer = trained_here
    assert Evaluator(ctx, VllmRoutes({HERE: vllm.url})).run_pending() == [job.id]
    (result,) = [f for f in dest.fine_tuning.jobs.retrieve(job.id).result_files
                 if dest.files.retrieve(f).filename == "eval_report.json"]  # fmt: skip
    report = json.loads(dest.files.content(result).text)
    assert (report["data"], report["examples"]) == ("held_out", 6)
    rows = {m["kind"]: m for m in report["models"]}
    evens = sum(1 for n in held if n % 2 == 0)
    assert (rows["source"]["model"], rows["source"]["matches"]) == (OLD_NAME, evens)
    assert (rows["fine_tuned"]["matches"], rows["base"]["matches"]) == (6 - evens, 0)
    assert (report["flips"]["lost"], report["flips"]["gained"]) == (evens, 6 - evens)
    assert {(f["line"], f["flip"]) for f in report["flips"]["examples"]} == {
        (n, "lost" if n % 2 == 0 else "gained") for n in held
    }
    shown = whetstone_cli(whetstone, key, "jobs", "eval", job.id)
    assert shown.returncode == 0, shown.stderr
    assert f"Against the source model: {evens} lost" in shown.stdout
