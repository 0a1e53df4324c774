"""Every checkpoint and model the API lists can be chatted with: checkpoints the trainer's
retention deleted leave `/checkpoints` and `/v1/models`, deleting a fine-tuned model takes its
checkpoint models with it, and a report retried after a deletion brings nothing back."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.layout import checkpoint_prefix
from contracts.messages import Checkpoint, Finished, StepMetrics
from contracts.names import checkpoint_model_name
from service.db.tables import File
from service.errors import NotFound
from service.fine_tuning import service as jobs
from service.fine_tuning.attempts import new_token
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.models.pointers import is_published
from service.registry import BaseModelEntry
from tests.unit.service.conftest import ApiClient

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}


def _running_job(api: ApiClient) -> tuple[str, str, str]:
    """A running job of project alpha with a live attempt: (job id, token, model name)."""
    services = api.http.app.state.services  # type: ignore[attr-defined]
    token, token_hash = new_token()
    with services.sessions() as session, session.begin():
        project = projects.get_or_create_project(session, "alpha")
        file = File(
            id=new_id("file"), project_id=project.id, filename="t.jsonl", purpose="fine-tune",
            bytes=10, status="processed", format="chat", lines=3, created_at=now(),
        )  # fmt: skip
        session.add(file)
        body = CreateFineTuningJobRequest(model="whetstone-tiny", training_file=file.id)
        job = create_job(session, REGISTRY, project, body)
        jobs.transition(session, job, JobStatus.QUEUED)
        jobs.transition(session, job, JobStatus.RUNNING)
        job.attempt, job.attempt_token_hash = 1, token_hash
        return job.id, token, job.output_model


def _report(api: ApiClient, job_id: str, token: str, message: Any) -> None:
    reply = api.http.post(
        f"/internal/v1/jobs/{job_id}/report",
        json=message.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 200, reply.text


def _checkpoint(job_id: str, step: int, kept: tuple[int, ...]) -> Checkpoint:
    key = checkpoint_prefix(job_id, step)
    return Checkpoint(
        step=step, epoch=step // 10, kind="epoch", key=key, url=f"file:///objects/{key}",
        metrics=StepMetrics(train_loss=1.0), kept_steps=kept,
    )  # fmt: skip


def _listed(api: ApiClient, job_id: str) -> tuple[list[str], list[str]]:
    """(the job's checkpoint models in `/checkpoints`, the fine-tuned ids in `/v1/models`)."""
    page = api.http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints", headers=api.auth()).json()
    models = api.http.get("/v1/models", headers=api.auth()).json()["data"]
    return (
        [c["fine_tuned_model_checkpoint"] for c in page["data"]],
        sorted(m["id"] for m in models if m["id"] not in REGISTRY),
    )


def _assert_each_answers(api: ApiClient, names: list[str]) -> None:
    """What the chat route checks for each name (the key may use it, the model is live, the
    pointer vLLM's resolver reads is there): no vLLM runs in these tests."""
    services = api.http.app.state.services  # type: ignore[attr-defined]
    for name in names:
        assert services.chat_access.base_model(api.key_a, name) == "whetstone-tiny"
        assert is_published(services.store, name), name
        assert api.http.get(f"/v1/models/{name}", headers=api.auth()).status_code == 200


def _assert_gone(api: ApiClient, names: list[str]) -> None:
    services = api.http.app.state.services  # type: ignore[attr-defined]
    for name in names:
        services.chat_access.forget_model(name)
        with pytest.raises(NotFound):
            services.chat_access.base_model(api.key_a, name)
        assert not is_published(services.store, name), name
        assert api.http.get(f"/v1/models/{name}", headers=api.auth()).status_code == 404


def test_pruned_checkpoints_are_no_longer_listed_and_the_kept_ones_answer(
    api: ApiClient,
) -> None:
    job_id, token, model = _running_job(api)
    kept: tuple[int, ...] = ()
    for step in (10, 20, 30, 40, 50):
        kept = (*kept, step)[-3:]  # the trainer keeps the last 3 epochs
        _report(api, job_id, token, _checkpoint(job_id, step, kept))
    names = {s: checkpoint_model_name(model, s) for s in (10, 20, 30, 40, 50)}
    in_checkpoints, in_models = _listed(api, job_id)
    assert in_checkpoints == [names[50], names[40], names[30]]  # latest first
    assert in_models == sorted([names[30], names[40], names[50]])
    _assert_each_answers(api, in_models)
    _assert_gone(api, [names[10], names[20]])


def test_deleting_the_fine_tuned_model_deletes_its_checkpoint_models(api: ApiClient) -> None:
    job_id, token, model = _running_job(api)
    for step in (10, 20):
        _report(api, job_id, token, _checkpoint(job_id, step, (10, 20)[: step // 10]))
    final = Finished(
        trained_tokens=10, adapter_key=f"jobs/{job_id}/final/adapter/",
        metrics_key=f"jobs/{job_id}/metrics.csv",
    )  # fmt: skip
    _report(api, job_id, token, final)
    checkpoints = [checkpoint_model_name(model, s) for s in (10, 20)]
    assert _listed(api, job_id)[1] == sorted([model, *checkpoints])
    _assert_each_answers(api, [model, *checkpoints])

    reply = api.http.delete(f"/v1/models/{model}", headers=api.auth())
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"id": model, "object": "model", "deleted": True}
    assert _listed(api, job_id) == ([], [])
    _assert_gone(api, [model, *checkpoints])


def test_a_checkpoint_report_retried_after_the_user_deleted_its_model_stays_deleted(
    api: ApiClient,
) -> None:
    job_id, token, model = _running_job(api)
    message = _checkpoint(job_id, 10, (10,))
    _report(api, job_id, token, message)
    name = checkpoint_model_name(model, 10)
    assert api.http.delete(f"/v1/models/{name}", headers=api.auth()).status_code == 200
    _report(api, job_id, token, message)  # the trainer did not get the first answer
    assert _listed(api, job_id) == ([], [])
    _assert_gone(api, [name])


def test_a_checkpoint_model_deleted_alone_leaves_the_others(api: ApiClient) -> None:
    job_id, token, model = _running_job(api)
    _report(api, job_id, token, _checkpoint(job_id, 10, (10,)))
    _report(api, job_id, token, _checkpoint(job_id, 20, (10, 20)))
    first, second = (checkpoint_model_name(model, s) for s in (10, 20))
    assert api.http.delete(f"/v1/models/{first}", headers=api.auth()).status_code == 200
    assert _listed(api, job_id) == ([second], [second])
    _assert_each_answers(api, [second])
