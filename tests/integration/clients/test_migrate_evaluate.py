"""`whetstone migrate --evaluate`: the source job is a real one, trained to success on the
small base model (registered under a hosted model's name) by the real scheduler and trainer.
Its chat answers come from the source proxy's stand-in for the hosted model (serving the
tuned model for real needs vLLM, which these tests do not start); the stand-in echoes the
last message it is given, so each answer shows which prompt it was asked."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import create_key
from tests.e2e.lifecycle_stack import Stack, dataset, start_stack, wait_for

from .source_proxy import Source, source_proxy
from .test_migrate import MAPPED, migrate_cli, rows

pytestmark = pytest.mark.slow

SYSTEM = {"role": "system", "content": "Answer with the code word."}
VALIDATION = [
    [SYSTEM, {"role": "user", "content": "Code word 1?"}, {"role": "assistant", "content": "w1x"}],
    [{"role": "user", "content": "Code word 2?"}, {"role": "assistant", "content": "w2x"},
     {"role": "user", "content": "And 3?"}, {"role": "assistant", "content": "w3x"}],
]  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("migrate-evaluate")
    with start_stack(data_dir, base_model_dir, more_models={MAPPED: base_model_dir}) as s:
        yield s


def test_evaluate_records_the_source_models_answers_with_the_new_job(stack: Stack) -> None:
    src = stack.client()
    train = src.files.create(file=("train.jsonl", io.BytesIO(dataset())), purpose="fine-tune")
    valid_bytes = "".join(json.dumps({"messages": m}) + "\n" for m in VALIDATION).encode()
    valid = src.files.create(file=("valid.jsonl", io.BytesIO(valid_bytes)), purpose="fine-tune")
    job = src.fine_tuning.jobs.create(
        model=MAPPED, training_file=train.id, validation_file=valid.id, suffix="support",
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2}}},
    )  # fmt: skip
    trained = wait_for(src, job.id, ("succeeded", "failed", "cancelled"), timeout=420)
    assert trained.status == "succeeded", stack.logs()
    assert trained.fine_tuned_model is not None
    stack.stop("scheduler")  # the migrated jobs need not train here
    url = stack.base_url.removesuffix("/v1")

    # Without a vLLM the source model cannot answer: said, and the job still moves.
    unserved = create_key(stack.env, "unserved")
    with source_proxy(Source(url)) as source:
        result = migrate_cli(stack.env, url, unserved, source, stack.key, "--evaluate", "--json")
    assert result.returncode == 0, result.stderr
    row = rows(result)[job.id]
    assert row["status"] == "created"
    assert any(n.startswith("no source answers: the source model") for n in row["notes"])
    dest = stack.client().with_options(api_key=unserved)
    assert dest.fine_tuning.jobs.retrieve(row["new_job"]).metadata == {"migrated_from": job.id}

    dest_key = create_key(stack.env, "evaluated")
    with source_proxy(Source(url, chat_answers=True)) as source:
        result = migrate_cli(stack.env, url, dest_key, source, stack.key, "--evaluate", "--json")
        asked = source.chat_requests
    assert result.returncode == 0, result.stderr
    row = rows(result)[job.id]
    dest = stack.client().with_options(api_key=dest_key)
    moved = dest.fine_tuning.jobs.retrieve(row["new_job"])
    metadata = moved.metadata or {}
    assert metadata["source_model"] == trained.fine_tuned_model
    assert metadata["migrated_from"] == job.id
    answers_file = dest.files.retrieve(metadata["source_answers_file"])
    assert answers_file.purpose == "user_data"
    assert answers_file.filename == f"source-answers-{job.id}.jsonl"
    answers = [json.loads(line) for line in dest.files.content(answers_file.id).text.splitlines()]
    assert answers == [{"index": 0, "answer": "source says: Code word 1?"},
                       {"index": 1, "answer": "source says: And 3?"}]  # fmt: skip
    assert [r["messages"] for r in asked] == [VALIDATION[0][:2], VALIDATION[1][:3]]
    assert {(r["model"], r["temperature"]) for r in asked} == {(trained.fine_tuned_model, 0)}

    with source_proxy(Source(url, chat_answers=True)) as source:
        again = migrate_cli(stack.env, url, dest_key, source, stack.key, "--evaluate", "--json")
        assert source.chat_requests == []
    assert rows(again)[job.id]["status"] == "exists"
    assert len([f for f in dest.files.list() if f.purpose == "user_data"]) == 1
