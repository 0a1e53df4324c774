"""The trainer -> service protocol (`contracts.messages`): every message survives the wire, and
the progress endpoint answers anything else with a 400 in OpenAI's error shape."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.messages import (
    Checkpoint,
    Failed,
    Finished,
    Heartbeat,
    Log,
    Message,
    Metrics,
    Reply,
    Started,
    StepMetrics,
    parse_message,
)
from service.db.tables import File, FineTuningJob
from service.fine_tuning import service as jobs
from service.fine_tuning.attempts import new_token
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.status import JobStatus
from service.ids import new_id, now
from service.keys import project_repository as projects
from service.registry import BaseModelEntry
from tests.unit.service.conftest import ApiClient

KEY = "jobs/ftjob-x/checkpoints/step-00000040/"
EXAMPLES: list[Message] = [
    Started(total_steps=120, attempt=2, resumed_from_step=40),
    Metrics(
        step=10,
        total_steps=120,
        train_loss=1.2,
        train_mean_token_accuracy=0.6,
        tokens_per_second=5000.0,
        peak_memory_mb=900.0,
    ),  # fmt: skip
    Checkpoint(
        step=40,
        epoch=1,
        kind="step",
        key=KEY,
        url="s3://bucket/" + KEY,
        metrics=StepMetrics(train_loss=1.0, valid_loss=1.1),
    ),  # fmt: skip
    Heartbeat(step=41),
    Log(level="warn", message="slow step"),
    Finished(
        trained_tokens=123456,
        adapter_key="jobs/ftjob-x/final/adapter/",
        metrics_key="jobs/ftjob-x/metrics.csv",
        full_valid_loss=1.1,
        full_valid_mean_token_accuracy=0.7,
    ),  # fmt: skip
    Failed(code="invalid_training_file", message="line 3: ...", param="training_file"),
]


def test_the_examples_cover_every_message_type() -> None:
    union = typing.get_args(typing.get_args(Message)[0])
    assert {type(m) for m in EXAMPLES} == set(union)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_every_message_round_trips_through_json(message: Message) -> None:
    again = parse_message(message.model_dump_json())
    assert type(again) is type(message) and again == message
    # As the channels send it: a JSON object, read back by the union the route declares.
    assert TypeAdapter(Message).validate_python(message.model_dump(mode="json")) == message


def test_step_metrics_are_the_metric_fields_of_a_metrics_message() -> None:
    metrics = Metrics(step=1, total_steps=2, train_loss=0.5)
    assert metrics.metric_values() == {**StepMetrics().metric_values(), "train_loss": 0.5}
    assert set(StepMetrics.model_fields) < set(Metrics.model_fields)


def test_reply_actions() -> None:
    assert Reply.model_validate({"action": "pause"}).action == "pause"
    with pytest.raises(ValidationError):
        Reply.model_validate({"action": "stop"})


# --- the progress endpoint -------------------------------------------------------------------

REGISTRY = {"whetstone-tiny": BaseModelEntry(name="whetstone-tiny", path="/nonexistent")}


def _running_job(api: ApiClient) -> tuple[str, str]:
    """A running job with a live attempt: (job id, the attempt's token)."""
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
        return job.id, token


def _post(api: ApiClient, job_id: str, token: str, body: Any) -> Any:
    return api.http.post(
        f"/internal/v1/jobs/{job_id}/report",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def _assert_openai_400(reply: Any, param: str | None) -> None:
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


def test_valid_messages_are_applied_and_answered(api: ApiClient) -> None:
    job_id, token = _running_job(api)
    for message in (Heartbeat(step=1), Metrics(step=1, total_steps=4, train_loss=2.0)):
        reply = _post(api, job_id, token, message.model_dump(mode="json"))
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"action": "continue"}
    events = api.http.get(f"/v1/fine_tuning/jobs/{job_id}/events", headers=api.auth()).json()
    metrics = [e for e in events["data"] if e["type"] == "metrics"]
    assert metrics[0]["message"] == "Step 1/4: training loss=2.0000"
    assert metrics[0]["data"]["train_loss"] == 2.0 and metrics[0]["data"]["step"] == 1


def test_unknown_message_type_is_a_400(api: ApiClient) -> None:
    job_id, token = _running_job(api)
    _assert_openai_400(_post(api, job_id, token, {"type": "progress", "step": 1}), "type")
    _assert_openai_400(_post(api, job_id, token, {"step": 1}), "type")  # no type at all


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"type": "metrics", "total_steps": 4, "train_loss": 1.0}, "metrics.step"),
        ({"type": "metrics", "step": "ten", "total_steps": 4}, "metrics.step"),
        (
            {"type": "checkpoint", "step": 4, "epoch": 1, "kind": "step", "url": "s3://b/k/"},
            "checkpoint.key",
        ),  # fmt: skip
        (
            {
                "type": "checkpoint",
                "step": 4,
                "epoch": 1,
                "kind": "sometimes",
                "key": "k/",
                "url": "s3://b/k/",
            },
            "checkpoint.kind",
        ),  # fmt: skip
        ({"type": "finished", "trained_tokens": 1, "metrics_key": "m.csv"}, "finished.adapter_key"),
        ({"type": "heartbeat", "step": [1]}, "heartbeat.step"),
    ],
)
def test_malformed_message_is_a_400_naming_the_field(
    api: ApiClient, body: dict[str, Any], param: str
) -> None:
    job_id, token = _running_job(api)
    _assert_openai_400(_post(api, job_id, token, body), param)
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None and job.status == "running" and job.fine_tuned_model is None


def test_a_body_that_is_not_an_object_is_a_400(api: ApiClient) -> None:
    job_id, token = _running_job(api)
    _assert_openai_400(_post(api, job_id, token, ["heartbeat"]), None)


def test_the_token_is_checked_before_the_body(api: ApiClient) -> None:
    job_id, _ = _running_job(api)
    for body in ({"type": "metrics"}, {"type": "progress"}, Heartbeat(step=1).model_dump()):
        for token in ("wsat-not-a-token", api.key_a):
            reply = _post(api, job_id, token, body)
            assert reply.status_code == 401, reply.text
            assert reply.json()["error"]["type"] == "invalid_request_error"
    reply = _post(api, "ftjob-missing", "wsat-not-a-token", {"type": "metrics"})
    assert reply.status_code == 401


@pytest.mark.parametrize("content", [b"not json", b'{"type": "metrics"', b""])
def test_the_token_is_checked_before_the_body_is_parsed(api: ApiClient, content: bytes) -> None:
    job_id, token = _running_job(api)
    url = f"/internal/v1/jobs/{job_id}/report"
    for bad in ("wsat-not-a-token", api.key_a):
        headers = {"Authorization": f"Bearer {bad}", "Content-Type": "application/json"}
        reply = api.http.post(url, content=content, headers=headers)
        assert reply.status_code == 401, reply.text
    # The live attempt's token with the same body: the body's own 400.
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    reply = api.http.post(url, content=content, headers=headers)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "invalid_json"


def test_a_report_delivered_twice_is_applied_once(api: ApiClient) -> None:
    """The trainer sends a report again when the reply to it was lost."""
    job_id, token = _running_job(api)
    key = f"jobs/{job_id}/checkpoints/step-00000002/"
    reports = [
        Metrics(step=1, total_steps=4, train_loss=2.0, learning_rate=1e-4),
        Metrics(step=2, total_steps=4, train_loss=1.5, learning_rate=1e-4),
        Checkpoint(step=2, epoch=1, kind="step", key=key, url="file:///x/" + key,
                   metrics=StepMetrics(train_loss=1.5)),
        Metrics(step=3, total_steps=4, train_loss=1.0),
    ]  # fmt: skip
    for message in reports:
        for _ in range(2):
            reply = _post(api, job_id, token, message.model_dump(mode="json"))
            assert reply.status_code == 200, reply.text
    auth = api.auth()
    events = api.http.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=100", headers=auth).json()
    steps = [e["data"]["step"] for e in events["data"] if e["type"] == "metrics"]
    assert sorted(steps) == [1, 2, 3]
    created = [e for e in events["data"] if e["message"].startswith("Checkpoint created")]
    assert len(created) == 1
    url = f"/v1/fine_tuning/jobs/{job_id}/checkpoints"
    checkpoints = api.http.get(url, headers=auth).json()["data"]
    assert [c["step_number"] for c in checkpoints] == [2]
