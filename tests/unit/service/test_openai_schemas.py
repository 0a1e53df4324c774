"""Answers validated against OpenAI's own schemas (a copy of the subset of openai/openai-openapi
this project follows, tests/data/openai/, MIT licence): what a strict client generated from
that spec would refuse, a null where the schema has none, a status outside its enum, a
missing field, fails here. Whetstone's extension fields are extra properties, which the
schemas allow."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from contracts.messages import Checkpoint, Finished, Log, Metrics, StepMetrics
from contracts.names import checkpoint_model_name
from service.fine_tuning.schemas import CheckpointMetrics
from service.keys import admin_key_repository as admin_keys
from service.keys import project_repository as projects
from tests.unit.service.conftest import ApiClient
from tests.unit.service.test_checkpoint_models import _checkpoint, _report, _running_job

SPEC = Path(__file__).parents[2] / "data" / "openai" / "openai-openapi-subset.yaml"
CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@cache
def _components() -> dict[str, Any]:
    return _exclusive_bounds(yaml.safe_load(SPEC.read_text())["components"])  # type: ignore[no-any-return]


def _exclusive_bounds(node: Any) -> Any:
    """A few schemas of the spec keep OpenAPI 3.0's `exclusiveMinimum: true` beside `minimum`
    (DPO's `beta`: more than 0); JSON Schema 2020-12 reads a number there, and `true` as 1,
    which would refuse `beta: 0.2`; and some keep 3.0's `nullable`. Written the 2020-12 way,
    with the meaning the spec has."""
    if isinstance(node, list):
        return [_exclusive_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _exclusive_bounds(value) for key, value in node.items()}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(exclusive) is True and bound in node:
            node[exclusive] = node.pop(bound)
        elif node.get(exclusive) is False:
            del node[exclusive]
    # OpenAPI 3.0's `nullable: true` (the streamed chunk's `logprobs`, `finish_reason`, `usage`)
    # is 2020-12's "this schema, or null"; 2020-12 would ignore the keyword and refuse null.
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


def assert_matches(schema: str, body: Any) -> None:
    """`body` is valid against `#/components/schemas/{schema}` (JSON Schema 2020-12, what
    OpenAPI 3.1 uses); every error is listed."""
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": _components()}
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], f"{schema}: {json.dumps(body)[:2000]}"


def _ok(reply: Any) -> Any:
    assert reply.status_code == 200, reply.text
    return reply.json()


def _upload(api: ApiClient) -> dict[str, Any]:
    line = json.dumps({"messages": CHAT}).encode() + b"\n"
    files = {"file": ("train.jsonl", line * 12, "application/jsonl")}
    reply = api.http.post(
        "/v1/files", headers=api.auth(), files=files, data={"purpose": "fine-tune"}
    )
    return _ok(reply)  # type: ignore[no-any-return]


def test_the_spec_copy_is_there() -> None:
    """Not a skip: without the copy every test below would pass for nothing."""
    assert {"OpenAIFile", "FineTuningJob", "ErrorResponse"} <= set(_components()["schemas"])


def test_files(api: ApiClient) -> None:
    uploaded = _upload(api)
    assert "expires_at" not in uploaded and "status_details" not in uploaded
    assert_matches("OpenAIFile", uploaded)
    assert_matches(
        "OpenAIFile", _ok(api.http.get(f"/v1/files/{uploaded['id']}", headers=api.auth()))
    )
    assert_matches("ListFilesResponse", _ok(api.http.get("/v1/files", headers=api.auth())))
    deleted = _ok(api.http.delete(f"/v1/files/{uploaded['id']}", headers=api.auth()))
    assert_matches("DeleteFileResponse", deleted)


def test_jobs_events_checkpoints_and_models(api: ApiClient) -> None:
    file_id = _upload(api)["id"]
    created = _ok(
        api.http.post(
            "/v1/fine_tuning/jobs",
            headers=api.auth(),
            json={"model": "whetstone-tiny", "training_file": file_id, "keep_checkpoints": 5},
        )
    )
    assert_matches("FineTuningJob", created)
    assert created["keep_checkpoints"] == 5

    job_id, token, model = _running_job(api)
    _report(api, job_id, token, Metrics(step=1, total_steps=20, train_loss=1.5))
    _report(api, job_id, token, Log(level="warn", message="slow step"))
    _report(api, job_id, token, _checkpoint(job_id, 10, (10,)))  # only a training loss
    pausing = _ok(api.http.post(f"/v1/fine_tuning/jobs/{job_id}/pause", headers=api.auth()))
    assert pausing["status"] == "pausing"
    # `pausing` and `paused` are OpenAI's statuses now, not yet in the spec's enum.
    assert_matches("FineTuningJob", {**pausing, "status": "running"})

    running = _ok(api.http.get(f"/v1/fine_tuning/jobs/{job_id}", headers=api.auth()))
    assert_matches("FineTuningJob", {**running, "status": "running"})
    page = _ok(api.http.get("/v1/fine_tuning/jobs", headers=api.auth()))
    assert len(page["data"]) == 2
    for job in page["data"]:
        job["status"] = "running" if job["status"] == "pausing" else job["status"]
    assert_matches("ListPaginatedFineTuningJobsResponse", page)
    events = _ok(api.http.get(f"/v1/fine_tuning/jobs/{job_id}/events", headers=api.auth()))
    assert {e["type"] for e in events["data"]} == {"message", "metrics"}
    assert_matches("ListFineTuningJobEventsResponse", events)

    checkpoints = _ok(
        api.http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints", headers=api.auth())
    )
    assert checkpoints["data"][0]["metrics"] == {"step": 10, "train_loss": 1.0}  # no nulls
    assert_matches("ListFineTuningJobCheckpointsResponse", checkpoints)

    _report(api, job_id, token, Checkpoint(**{
        **_checkpoint(job_id, 20, (10, 20)).model_dump(),
        "metrics": StepMetrics(train_loss=0.5, full_valid_loss=0.7),
    }))  # fmt: skip
    final = Finished(
        trained_tokens=10, adapter_key=f"jobs/{job_id}/final/adapter/",
        metrics_key=f"jobs/{job_id}/metrics.csv",
    )  # fmt: skip
    _report(api, job_id, token, final)
    done = _ok(api.http.get(f"/v1/fine_tuning/jobs/{job_id}", headers=api.auth()))
    assert done["status"] == "succeeded" and done["fine_tuned_model"] == model
    assert_matches("FineTuningJob", done)

    models = _ok(api.http.get("/v1/models", headers=api.auth()))
    assert {model, checkpoint_model_name(model, 20)} <= {m["id"] for m in models["data"]}
    assert_matches("ListModelsResponse", models)
    assert_matches("Model", _ok(api.http.get(f"/v1/models/{model}", headers=api.auth())))
    assert_matches(
        "DeleteModelResponse", _ok(api.http.delete(f"/v1/models/{model}", headers=api.auth()))
    )


def test_checkpoint_metrics_are_the_step_metrics_and_the_step() -> None:
    # A multi grader's sub-rewards are flattened into extra keys (`train_reward/<name>`).
    named = {"step", *StepMetrics.model_fields} - {"sub_rewards"}
    assert set(CheckpointMetrics.model_fields) == named
    flat = StepMetrics(train_reward_mean=0.5, sub_rewards={"train_reward/exact": 0.5})
    kept = CheckpointMetrics.model_validate({"step": 1, **flat.metric_values()})
    assert kept.model_dump(exclude_none=True) == {
        "step": 1, "train_reward_mean": 0.5, "train_reward/exact": 0.5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "param", "code"),
    [
        ("post", "/v1/chat/completions", {"model": "whetstone-tiny"}, "messages",
         "missing_required_parameter"),
        ("post", "/v1/chat/completions", {"model": "whetstone-tiny", "messages": "hi"},
         "messages", "invalid_type"),
        ("post", "/v1/chat/completions", {"model": "whetstone-tiny", "messages": []},
         "messages", "empty_array"),
        ("post", "/v1/chat/completions", {"messages": CHAT}, "model", "missing_required_parameter"),
        ("post", "/v1/fine_tuning/jobs", {"model": "whetstone-tiny"}, "training_file",
         "missing_required_parameter"),
        ("post", "/v1/fine_tuning/jobs", {"model": "whetstone-tiny", "training_file": "f",
         "seed": "seven"}, "seed", "invalid_type"),
        ("post", "/v1/fine_tuning/jobs", {"model": "whetstone-tiny", "training_file": "f",
         "keep_checkpoints": 0}, "keep_checkpoints", "invalid_value"),
        ("post", "/v1/fine_tuning/jobs", {"model": "whetstone-tiny", "training_file": "f",
         "keep_checkpoint": 5}, "keep_checkpoint", "unknown_parameter"),
        ("post", "/v1/fine_tuning/jobs", {"model": "whetstone-tiny", "training_file": "f",
         "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
         "method.supervised.hyperparameters.n_epochs", "invalid_value"),
        ("post", "/v1/fine_tuning/jobs", {"model": "whetstone-tiny", "training_file": "f",
         "method": {"type": "supervised", "supervised": {"hyperparameters": {"weight_decay": 2}}}},
         "method.supervised.hyperparameters.weight_decay", "invalid_value"),
        ("get", "/v1/fine_tuning/jobs?limit=many", None, "limit", "invalid_type"),
        ("get", "/v1/models/ft:nothing:here::abc12345", None, "model", "model_not_found"),
    ],
)  # fmt: skip
def test_errors_in_openais_words(
    api: ApiClient, method: str, path: str, body: Any, param: str, code: str
) -> None:
    kwargs: dict[str, Any] = {"headers": api.auth()}
    if body is not None:
        kwargs["json"] = body
    reply = getattr(api.http, method)(path, **kwargs)
    assert 400 <= reply.status_code < 500, reply.text
    assert_matches("ErrorResponse", reply.json())
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["type"] == "invalid_request_error" and param in error["message"]


def test_a_dpo_job(api: ApiClient) -> None:
    line = json.dumps({
        "input": {"messages": CHAT[:1]},
        "preferred_output": CHAT[1:],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }).encode() + b"\n"  # fmt: skip
    files = {"file": ("prefs.jsonl", line * 12, "application/jsonl")}
    file_id = _ok(
        api.http.post("/v1/files", headers=api.auth(), files=files, data={"purpose": "fine-tune"})
    )["id"]
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    body = {"model": "whetstone-tiny", "training_file": file_id, "method": method}
    created = _ok(api.http.post("/v1/fine_tuning/jobs", headers=api.auth(), json=body))
    assert created["method"]["dpo"]["hyperparameters"]["beta"] == 0.2
    assert_matches("FineTuningJob", created)


def test_uploads_and_their_parts(api: ApiClient) -> None:
    data = json.dumps({"messages": CHAT}).encode() + b"\n"
    body = {"purpose": "fine-tune", "filename": "t.jsonl", "bytes": len(data) * 12,
            "mime_type": "application/jsonl"}  # fmt: skip
    upload = _ok(api.http.post("/v1/uploads", headers=api.auth(), json=body))
    assert_matches("Upload", upload)
    part = _ok(
        api.http.post(
            f"/v1/uploads/{upload['id']}/parts", headers=api.auth(), files={"data": data * 12}
        )
    )
    assert_matches("UploadPart", part)
    done = _ok(
        api.http.post(
            f"/v1/uploads/{upload['id']}/complete",
            headers=api.auth(),
            json={"part_ids": [part["id"]]},
        )
    )
    assert done["status"] == "completed" and done["file"]["bytes"] == len(data) * 12
    assert_matches("Upload", done)
    other = _ok(api.http.post("/v1/uploads", headers=api.auth(), json=body))
    cancelled = _ok(api.http.post(f"/v1/uploads/{other['id']}/cancel", headers=api.auth()))
    assert cancelled["status"] == "cancelled"
    assert_matches("Upload", cancelled)


def test_checkpoint_permissions(api: ApiClient) -> None:
    job_id, token, _ = _running_job(api)
    _report(api, job_id, token, _checkpoint(job_id, 10, (10,)))
    checkpoints = api.http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints", headers=api.auth())
    name = _ok(checkpoints)["data"][0]["fine_tuned_model_checkpoint"]
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        admin = {"Authorization": f"Bearer {admin_keys.create_admin_key(session)}"}
        beta = projects.get_or_create_project(session, "beta").id
    path = f"/v1/fine_tuning/checkpoints/{name}/permissions"
    granted = _ok(api.http.post(path, headers=admin, json={"project_ids": [beta]}))
    assert [p["project_id"] for p in granted["data"]] == [beta]
    assert_matches("ListFineTuningCheckpointPermissionResponse", granted)
    assert_matches("FineTuningCheckpointPermission", granted["data"][0])
    listed = _ok(api.http.get(path, headers=admin))
    assert_matches("ListFineTuningCheckpointPermissionResponse", listed)
    deleted = _ok(api.http.delete(f"{path}/{granted['data'][0]['id']}", headers=admin))
    assert deleted["deleted"] is True
    assert_matches("DeleteFineTuningCheckpointPermissionResponse", deleted)
