"""The object keys a trainer reports (`key`, `adapter_key`, `metrics_key`) must lie in its
own job's folder: anything else is a 400 that changes nothing (no checkpoint, no model, no
result file, not even the lease)."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import layout
from service.db.tables import FineTunedModel, FineTuningJob, FineTuningJobCheckpoint
from tests.unit.service.conftest import ApiClient
from tests.unit.service.test_trainer_messages import _post, _running_job


def _checkpoint(key: str) -> dict[str, Any]:
    return {"type": "checkpoint", "step": 4, "epoch": 1, "kind": "step", "key": key,
            "url": "file:///x/" + key, "metrics": {"train_loss": 1.0}}  # fmt: skip


def _finished(adapter_key: str, metrics_key: str) -> dict[str, Any]:
    return {"type": "finished", "trained_tokens": 10, "adapter_key": adapter_key,
            "metrics_key": metrics_key}  # fmt: skip


FOREIGN = [
    "jobs/ftjob-other/checkpoints/step-00000004/",
    "jobs/{job}/../ftjob-other/checkpoints/step-00000004/",
    "files/file-abc",
    "/etc/passwd",
    "jobs/{job}",
    "jobs/{job}x/final/adapter/",
    "jobs/{job}/./final/adapter/",
]


def _state(api: ApiClient, job_id: str) -> tuple[Any, ...]:
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        assert job is not None
        checkpoints = session.query(FineTuningJobCheckpoint).filter_by(job_id=job_id).count()
        models = session.query(FineTunedModel).count()
        return (job.status, job.lease_expires_at, job.resume_from, job.result_files,
                checkpoints, models)  # fmt: skip


@pytest.mark.parametrize("key", FOREIGN)
def test_a_checkpoint_outside_the_job_is_a_400_that_changes_nothing(
    api: ApiClient, key: str
) -> None:
    job_id, token = _running_job(api)
    before = _state(api, job_id)
    reply = _post(api, job_id, token, _checkpoint(key.format(job=job_id)))
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == ("key", "invalid_object_key")
    assert _state(api, job_id) == before


@pytest.mark.parametrize("field", ["adapter_key", "metrics_key"])
def test_a_finish_naming_another_jobs_objects_is_a_400_that_changes_nothing(
    api: ApiClient, field: str
) -> None:
    job_id, token = _running_job(api)
    keys = {"adapter_key": layout.final_adapter_prefix(job_id),
            "metrics_key": layout.metrics_key(job_id)}  # fmt: skip
    keys[field] = "jobs/ftjob-victim/" + (
        "final/adapter/" if field == "adapter_key" else "metrics.csv"
    )
    before = _state(api, job_id)
    reply = _post(api, job_id, token, _finished(**keys))
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == field
    assert _state(api, job_id) == before


def test_keys_inside_the_job_are_its_own() -> None:
    assert layout.is_job_key("ftjob-a", "jobs/ftjob-a/checkpoints/step-00000004/")
    assert layout.is_job_key("ftjob-a", "jobs/ftjob-a/metrics.csv")
    assert not layout.is_job_key("ftjob-a", "jobs/ftjob-a/")
    assert not layout.is_job_key("ftjob-a", "jobs/ftjob-ab/metrics.csv")


def test_the_metrics_csv_becomes_a_result_file_without_being_read_whole(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, token = _running_job(api)
    services = api.http.app.state.services  # type: ignore[attr-defined]
    csv = b"step,train_loss\n" + b"".join(b"%d,1.0\n" % i for i in range(5000))
    services.store.put_bytes(layout.metrics_key(job_id), csv)
    read_whole = services.store.get_bytes

    def get_bytes(key: str) -> bytes:
        assert key != layout.metrics_key(job_id), "the metrics CSV was read whole"
        return read_whole(key)  # type: ignore[no-any-return]

    monkeypatch.setattr(services.store, "get_bytes", get_bytes)
    finished = _finished(layout.final_adapter_prefix(job_id), layout.metrics_key(job_id))
    reply = _post(api, job_id, token, finished)
    assert reply.status_code == 200, reply.text
    job = api.http.get(f"/v1/fine_tuning/jobs/{job_id}", headers=api.auth()).json()
    (file_id,) = job["result_files"]
    file = api.http.get(f"/v1/files/{file_id}", headers=api.auth()).json()
    assert file["bytes"] == len(csv)
    content = api.http.get(f"/v1/files/{file_id}/content", headers=api.auth())
    assert content.content == csv
