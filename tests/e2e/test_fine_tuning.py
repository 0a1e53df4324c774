"""The fine-tuning jobs API through the official `openai` package against a running server.

Jobs past `validating_files` are driven by `jobdriver` (the scheduler's domain functions on
the server's database), since the scheduler is not part of these tests.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import openai
import pytest

from tests.corpus.malformed import GOOD, PREF_GOOD

from . import jobdriver
from .conftest import Server

BASE = "whetstone-tiny"


def upload(client: openai.OpenAI, data: bytes = GOOD * 4) -> str:
    return client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id


def supervised(**hyperparameters: Any) -> Any:
    return {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}


def dpo(**hyperparameters: Any) -> Any:
    return {"type": "dpo", "dpo": {"hyperparameters": hyperparameters}}


def wandb(**settings: Any) -> Any:
    return {"type": "wandb", "wandb": settings}


def test_create_and_retrieve_report_every_field(client: openai.OpenAI) -> None:
    train, valid = upload(client), upload(client)
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=train,
        validation_file=valid,
        method=supervised(n_epochs=2, batch_size=4, learning_rate_multiplier=0.5),
        suffix="support-bot_1",
        seed=42,
        metadata={"team": "docs"},
        integrations=[{"type": "wandb", "wandb": {"project": "whetstone", "tags": ["a"]}}],
    )
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job"
    assert (job.status, job.model, job.training_file, job.validation_file) == (
        "validating_files", BASE, train, valid,
    )  # fmt: skip
    assert (job.fine_tuned_model, job.finished_at, job.trained_tokens, job.error) == (
        None, None, None, None,
    )  # fmt: skip
    assert job.seed == 42 and job.metadata == {"team": "docs"} and job.result_files == []
    assert job.organization_id.startswith("proj-") and job.estimated_finish is None
    assert job.method is not None and job.method.type == "supervised"
    assert job.method.supervised is not None and job.method.supervised.hyperparameters is not None
    assert job.method.supervised.hyperparameters.n_epochs == 2
    assert (job.hyperparameters.batch_size, job.hyperparameters.learning_rate_multiplier) == (
        4,
        0.5,
    )
    assert job.integrations is not None and job.integrations[0].wandb.project == "whetstone"
    assert client.fine_tuning.jobs.retrieve(job.id) == job
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert events == [  # newest first
        f"Validating training file: {train} and validation file: {valid}",
        f"Created fine-tuning job: {job.id}",
    ]


def test_defaults_random_seed_and_deprecated_hyperparameters(client: openai.OpenAI) -> None:
    train = upload(client)
    plain = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    assert plain.method is not None and plain.method.type == "supervised"
    assert plain.hyperparameters.n_epochs == "auto" and 0 <= plain.seed <= 2_147_483_647
    legacy = client.fine_tuning.jobs.create(
        model=BASE, training_file=train, hyperparameters={"n_epochs": 5}
    )
    assert legacy.method is not None and legacy.method.supervised is not None
    assert legacy.method.supervised.hyperparameters is not None
    assert legacy.method.supervised.hyperparameters.n_epochs == 5


LORA = {"r": 32, "alpha": 64, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
DEFAULT_LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def test_lora_and_learning_rate_extension_fields(server: Server) -> None:
    client = server.client()
    jobs = client.fine_tuning.jobs
    train = upload(client)
    job = jobs.create(
        model=BASE,
        training_file=train,
        method=supervised(n_epochs=2),
        extra_body={"lora": LORA, "learning_rate": 1e-4},
    )
    again = jobs.retrieve(job.id)
    assert again == job
    assert again.model_extra is not None and again.model_extra["lora"] == LORA
    assert again.model_extra["learning_rate"] == 1e-4
    assert again.hyperparameters.learning_rate_multiplier == 0.5  # 1e-4 / 2e-4
    assert again.method is not None and again.method.supervised is not None
    assert again.method.supervised.hyperparameters is not None
    assert again.method.supervised.hyperparameters.learning_rate_multiplier == 0.5
    assert again.method.supervised.hyperparameters.n_epochs == 2

    # Left out: the JobSpec's defaults; the rate once the multiplier is resolved.
    partial = jobs.create(model=BASE, training_file=train, extra_body={"lora": {"r": 8}})
    assert partial.model_extra is not None
    assert partial.model_extra["lora"] == {**DEFAULT_LORA, "r": 8}
    assert partial.model_extra["learning_rate"] is None  # multiplier still `auto`
    jobdriver.start(server, partial.id)  # resolved multiplier 2.0
    assert jobs.retrieve(partial.id).model_extra["learning_rate"] == 4e-4  # type: ignore[index]
    plain = jobs.create(model=BASE, training_file=train)
    assert plain.model_extra is not None and plain.model_extra["lora"] == DEFAULT_LORA

    # Continued training keeps the parent's LoRA settings, and refuses new ones.
    jobdriver.start(server, job.id)
    model = jobdriver.succeed(server, job.id)
    child = jobs.create(model=model, training_file=train)
    assert child.model_extra is not None and child.model_extra["lora"] == LORA
    with pytest.raises(openai.BadRequestError) as info:
        jobs.create(model=model, training_file=train, extra_body={"lora": {"r": 8}})
    assert info.value.param == "lora"  # type: ignore[attr-defined]


def test_dpo_needs_a_preference_file(client: openai.OpenAI) -> None:
    prefs, chat = upload(client, PREF_GOOD * 3), upload(client)
    method: Any = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    job = client.fine_tuning.jobs.create(model=BASE, training_file=prefs, method=method)
    assert job.method is not None and job.method.type == "dpo"
    assert job.method.dpo is not None and job.method.dpo.hyperparameters is not None
    assert job.method.dpo.hyperparameters.beta == 0.2
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model=BASE, training_file=chat, method=method)
    assert info.value.param == "training_file" and "preference" in info.value.message  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model=BASE, training_file=prefs)
    assert info.value.param == "training_file"  # type: ignore[attr-defined]


def test_list_auto_paginates_and_filters_by_metadata(server: Server) -> None:
    client = server.client(server.key_b)
    train, run = upload(client), uuid.uuid4().hex
    ids = {
        client.fine_tuning.jobs.create(model=BASE, training_file=train, metadata={"run": run}).id
        for _ in range(5)
    }
    first = client.fine_tuning.jobs.list(limit=2, metadata={"run": run})
    assert len(first.data) == 2 and first.has_more
    listed = [j.id for j in client.fine_tuning.jobs.list(limit=2, metadata={"run": run})]
    assert set(listed) == ids and len(listed) == 5  # the SDK followed `after` by itself
    created = [j.created_at for j in client.fine_tuning.jobs.list(limit=2, metadata={"run": run})]
    assert created == sorted(created, reverse=True)  # newest first
    assert not client.fine_tuning.jobs.list(metadata={"run": "other"}).data
    everything = {j.id for j in client.fine_tuning.jobs.list(limit=3)}
    assert ids <= everything


def test_cancel_pause_resume_follow_the_state_machine(server: Server) -> None:
    client = server.client()
    jobs = client.fine_tuning.jobs
    job = jobs.create(model=BASE, training_file=upload(client))
    for refused in (jobs.pause, jobs.resume):  # not running, not paused
        with pytest.raises(openai.BadRequestError):
            refused(job.id)
    jobdriver.start(server, job.id)
    running = jobs.retrieve(job.id)
    assert running.status == "running" and running.hyperparameters.n_epochs == 3
    assert jobs.pause(job.id).status == "pausing"  # until its attempt has stopped
    for refused in (jobs.pause, jobs.resume):
        with pytest.raises(openai.BadRequestError):
            refused(job.id)
    jobdriver.attempt_ended(server, job.id)
    assert jobs.retrieve(job.id).status == "paused"
    with pytest.raises(openai.BadRequestError):
        jobs.pause(job.id)
    assert jobs.resume(job.id).status == "queued"
    with pytest.raises(openai.BadRequestError):
        jobs.resume(job.id)
    cancelled = jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(openai.BadRequestError):
        jobs.cancel(job.id)
    messages = [e.message for e in jobs.list_events(job.id, limit=2)]  # pages followed
    assert messages[:6] == [
        "Fine-tuning job cancelled",
        "Fine-tuning job resumed, moving job to queued state",
        "Fine-tuning job paused",
        "Pausing fine-tuning job: it stops at its next checkpoint",
        "Fine-tuning job started",
        "Files validated, moving job to queued state",
    ]
    assert messages[-1] == f"Created fine-tuning job: {job.id}"
    assert len(messages) == len({e.id for e in jobs.list_events(job.id, limit=3)})


def test_checkpoints_success_and_continued_training(server: Server) -> None:
    client = server.client()
    jobs = client.fine_tuning.jobs
    train = upload(client)
    job = jobs.create(model=BASE, training_file=train, suffix="veloria")
    jobdriver.start(server, job.id)
    names = [jobdriver.checkpoint(server, job.id, step, loss=1 / step) for step in (10, 20, 30)]
    page = jobs.checkpoints.list(job.id, limit=2)
    assert len(page.data) == 2 and page.has_more
    checkpoints = list(jobs.checkpoints.list(job.id, limit=2))
    assert [c.step_number for c in checkpoints] == [30, 20, 10]
    latest = checkpoints[0]
    assert latest.id.startswith("ftckpt-") and latest.object == "fine_tuning.job.checkpoint"
    assert latest.fine_tuning_job_id == job.id and latest.fine_tuned_model_checkpoint == names[2]
    assert latest.metrics.step == 30 and latest.metrics.train_loss == pytest.approx(1 / 30)
    events = [e for e in jobs.list_events(job.id, limit=100)]
    assert f"Checkpoint created at step 30 with Snapshot ID: {names[2]}" in [
        e.message for e in events
    ]
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics[0].message.startswith("Step 30/100: training loss=") and metrics[0].data

    model = jobdriver.succeed(server, job.id, trained_tokens=777)
    done = jobs.retrieve(job.id)
    assert (done.status, done.fine_tuned_model, done.trained_tokens) == ("succeeded", model, 777)
    assert model.startswith(f"ft:{BASE}:alpha:veloria:{job.id[6:14]}")
    assert names[0] == f"{model}:ckpt-step-10"
    assert [e.message for e in jobs.list_events(job.id, limit=2).data] == [
        "The job has successfully completed",
        f"New fine-tuned model created: {model}",
    ]

    # Continued training from the project's own fine-tuned model (or one of its checkpoints).
    for parent in (model, names[1]):
        child = jobs.create(model=parent, training_file=train)
        assert child.model == parent and child.status == "validating_files"
    jobdriver.start(server, child.id)
    assert jobdriver.succeed(server, child.id).startswith(f"ft:{BASE}:alpha::")

    # Another project cannot train on it: same answer as a model that does not exist.
    other = server.client(server.key_b)
    theirs = upload(other)
    with pytest.raises(openai.BadRequestError) as foreign:
        other.fine_tuning.jobs.create(model=model, training_file=theirs)
    with pytest.raises(openai.BadRequestError) as missing:
        other.fine_tuning.jobs.create(model="ft:whetstone-tiny:x::nosuch00", training_file=theirs)
    assert foreign.value.param == missing.value.param == "model"  # type: ignore[attr-defined]
    assert foreign.value.code == missing.value.code == "model_not_available"


def test_wrong_key_and_unknown_ids(server: Server) -> None:
    with pytest.raises(openai.AuthenticationError):
        server.client("sk-whet-wrong").fine_tuning.jobs.list()
    jobs = server.client().fine_tuning.jobs
    for call in (jobs.retrieve, jobs.cancel, jobs.pause, jobs.resume):
        with pytest.raises(openai.NotFoundError):
            call("ftjob-nosuch")
    with pytest.raises(openai.NotFoundError):
        jobs.list_events("ftjob-nosuch")
    with pytest.raises(openai.NotFoundError):
        jobs.checkpoints.list("ftjob-nosuch")
    with pytest.raises(openai.BadRequestError) as info:
        jobs.list(after="ftjob-nosuch")
    assert info.value.param == "after"  # type: ignore[attr-defined]


HP = "method.supervised.hyperparameters"
DPO = "method.dpo.hyperparameters"
LR = "learning_rate_multiplier"
BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("model", {"model": "gpt-4o-mini"}, "model"),
    ("training_file", {"training_file": "file-nosuch"}, "training_file"),
    ("validation_file", {"validation_file": "file-nosuch"}, "validation_file"),
    ("reinforcement", {"method": {"type": "reinforcement"}}, "method.reinforcement.grader"),
    ("method_type", {"method": {"type": "magic"}}, "method.type"),
    ("other_block", {"method": {"type": "supervised", "dpo": {}}}, "method.dpo"),
    ("n_epochs_0", {"method": supervised(n_epochs=0)}, f"{HP}.n_epochs"),
    ("n_epochs_51", {"method": supervised(n_epochs=51)}, f"{HP}.n_epochs"),
    ("n_epochs_float", {"method": supervised(n_epochs=1.5)}, f"{HP}.n_epochs"),
    ("batch_size_0", {"method": supervised(batch_size=0)}, f"{HP}.batch_size"),
    ("batch_size_257", {"method": supervised(batch_size=257)}, f"{HP}.batch_size"),
    ("lr_0", {"method": supervised(learning_rate_multiplier=0)}, f"{HP}.{LR}"),
    ("lr_11", {"method": supervised(learning_rate_multiplier=11)}, f"{HP}.{LR}"),
    ("lr_word", {"method": supervised(learning_rate_multiplier="big")}, f"{HP}.{LR}"),
    ("beta_0", {"method": dpo(beta=0)}, f"{DPO}.beta"),
    ("beta_3", {"method": dpo(beta=3)}, f"{DPO}.beta"),
    ("dpo_epochs", {"method": dpo(n_epochs=99)}, f"{DPO}.n_epochs"),
    ("dpo_lr", {"method": dpo(learning_rate_multiplier=-1)}, f"{DPO}.{LR}"),
    ("beta_supervised", {"method": supervised(beta=0.5)}, f"{HP}.beta"),
    ("legacy_n_epochs", {"hyperparameters": {"n_epochs": 99}}, "hyperparameters.n_epochs"),
    ("legacy_batch", {"hyperparameters": {"batch_size": 300}}, "hyperparameters.batch_size"),
    ("legacy_method", {"hyperparameters": {}, "method": supervised(n_epochs=3)}, "hyperparameters"),
    ("legacy_and_dpo", {"hyperparameters": {"n_epochs": 2}, "method": dpo()}, "hyperparameters"),
    ("suffix_long", {"suffix": "x" * 65}, "suffix"),
    ("suffix_chars", {"suffix": "a:b"}, "suffix"),
    ("suffix_empty", {"suffix": ""}, "suffix"),
    ("seed_negative", {"seed": -1}, "seed"),
    ("seed_huge", {"seed": 2**31}, "seed"),
    ("metadata_17", {"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ("metadata_key", {"metadata": {"k" * 65: "v"}}, "metadata"),
    ("metadata_value", {"metadata": {"k": "v" * 513}}, "metadata"),
    ("wandb_type", {"integrations": [{**wandb(project="p"), "type": "x"}]}, "integrations[0].type"),
    ("wandb_project", {"integrations": [wandb()]}, "integrations[0].wandb.project"),
    ("integrations_6", {"integrations": [wandb(project="p")] * 6}, "integrations"),
    ("unknown_field", {"extra_body": {"lora_rank": 8}}, "lora_rank"),
    ("learning_rate_1", {"extra_body": {"learning_rate": 1}}, "learning_rate"),
    ("learning_rate_0", {"extra_body": {"learning_rate": 0}}, "learning_rate"),
    ("learning_rate_word", {"extra_body": {"learning_rate": "fast"}}, "learning_rate"),
    ("learning_rate_and_multiplier", {"method": supervised(learning_rate_multiplier=2),
                                      "extra_body": {"learning_rate": 1e-4}}, "learning_rate"),
    ("lora_not_object", {"extra_body": {"lora": 8}}, "lora"),
    ("lora_unknown", {"extra_body": {"lora": {"rank": 8}}}, "lora.rank"),
    ("lora_r_0", {"extra_body": {"lora": {"r": 0}}}, "lora.r"),
    ("lora_r_above_served", {"extra_body": {"lora": {"r": 128}}}, "lora.r"),  # vLLM's max 64
    ("lora_r_257", {"extra_body": {"lora": {"r": 257}}}, "lora.r"),
    ("lora_alpha", {"extra_body": {"lora": {"alpha": 0}}}, "lora.alpha"),
    ("lora_dropout", {"extra_body": {"lora": {"dropout": 1.0}}}, "lora.dropout"),
    ("lora_modules_empty", {"extra_body": {"lora": {"target_modules": []}}}, "lora.target_modules"),
    ("lora_modules_name", {"extra_body": {"lora": {"target_modules": ["q-proj"]}}},
     "lora.target_modules"),
    ("lora_modules_word", {"extra_body": {"lora": {"target_modules": "all"}}},
     "lora.target_modules"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "overrides", "param"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_request_names_the_param(
    server: Server, training_file: str, case: str, overrides: dict[str, Any], param: str
) -> None:
    kwargs: dict[str, Any] = {"model": BASE, "training_file": training_file, **overrides}
    with pytest.raises(openai.BadRequestError) as info:
        server.client().fine_tuning.jobs.create(**kwargs)
    assert info.value.status_code == 400
    assert info.value.param == param, info.value.message  # type: ignore[attr-defined]
    assert info.value.type == "invalid_request_error" and info.value.code  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def training_file(server: Server) -> str:
    return upload(server.client())
