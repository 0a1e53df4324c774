"""Limits that hold for everyone: random keys and keyless requests are rate limited by
address, the storage quota holds for the Uploads API (pending uploads count), abandoned
parts are swept by the scheduler on a schedule, and the limits are on by default."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from contracts.local_store import LocalStore
from service.app import create_app
from service.db.tables import Upload
from service.scheduler.runner import Scheduler
from service.settings import Settings

from .conftest import ApiClient, create_key

LINE = (
    b'{"messages": [{"role": "user", "content": "Hi?"}, '
    b'{"role": "assistant", "content": "Hello."}]}\n'
)


def start(tmp_path: Path, **settings: object) -> Iterator[ApiClient]:
    config = Settings(data_dir=tmp_path / "data", **settings)  # type: ignore[arg-type]
    with TestClient(create_app(config), raise_server_exceptions=False) as http:
        yield ApiClient(http, config, create_key(http, "alpha"), create_key(http, "beta"))


@pytest.fixture()
def limited(tmp_path: Path) -> Iterator[ApiClient]:
    yield from start(tmp_path, rate_limit_requests_per_minute=60, rate_limit_burst=3)


def test_random_keys_are_limited_by_address_and_a_real_key_is_not(limited: ApiClient) -> None:
    assert limited.http.get("/v1/models", headers=limited.auth()).status_code == 200
    codes = [
        limited.http.get("/v1/models", headers=limited.auth(f"sk-{secrets.token_hex(8)}"))
        for _ in range(6)
    ]
    assert [r.status_code for r in codes] == [401, 401, 429, 429, 429, 429]
    assert codes[-1].json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.http.get("/v1/models").status_code == 429  # no key at all: the same
    # The key that was accepted before keeps its own bucket.
    assert limited.http.get("/v1/models", headers=limited.auth()).status_code == 200


@pytest.fixture(params=["sqlite", "postgres"])
def small_quota(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiClient]:
    url = request.getfixturevalue("own_postgres_url") if request.param == "postgres" else None
    yield from start(tmp_path, quota_storage_bytes=1_000_000, database_url=url)


def create_upload(api: ApiClient, size: int, key: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    body = {"filename": "t.jsonl", "purpose": "fine-tune", "bytes": size,
            "mime_type": "application/jsonl"}  # fmt: skip
    r = api.http.post("/v1/uploads", json=body, headers=api.auth(key))
    return r.status_code, r.json()


def test_an_upload_past_the_storage_quota_is_refused_at_creation(small_quota: ApiClient) -> None:
    status, body = create_upload(small_quota, 2_000_000)
    assert status == 400
    assert (body["error"]["code"], body["error"]["param"]) == ("quota_exceeded", "bytes")
    assert "WHETSTONE_QUOTA_STORAGE_BYTES" in body["error"]["message"]


def test_pending_uploads_count_against_the_quota(small_quota: ApiClient) -> None:
    first_status, first = create_upload(small_quota, 600_000)
    assert first_status == 200
    assert create_upload(small_quota, 600_000)[0] == 400  # the first holds its room
    r = small_quota.http.post(
        "/v1/files",
        headers=small_quota.auth(),
        files={"file": ("t.jsonl", LINE * 6000, "application/jsonl")},  # about 600 kB
        data={"purpose": "fine-tune"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "quota_exceeded"
    assert create_upload(small_quota, 600_000, key=small_quota.key_b)[0] == 200  # per project
    cancel = small_quota.http.post(f"/v1/uploads/{first['id']}/cancel", headers=small_quota.auth())
    assert cancel.status_code == 200
    assert create_upload(small_quota, 600_000)[0] == 200  # its room is free again


def test_uploads_take_the_purpose_openai_and_the_docs_name(api: ApiClient) -> None:
    body = {"filename": "t.bin", "purpose": "user_data", "bytes": 10, "mime_type": "text/plain"}
    r = api.http.post("/v1/uploads", json=body, headers=api.auth())
    assert r.status_code == 400
    assert (r.json()["error"]["param"], r.json()["error"]["code"]) == ("purpose", "invalid_value")
    assert create_upload(api, 10)[0] == 200


def test_the_scheduler_sweeps_abandoned_parts_on_a_schedule(api: ApiClient) -> None:
    services = api.http.app.state.services  # type: ignore[attr-defined]
    status, upload = create_upload(api, len(LINE) * 2)
    assert status == 200
    part = api.http.post(
        f"/v1/uploads/{upload['id']}/parts",
        files={"data": ("blob", LINE, "application/octet-stream")},
        headers=api.auth(),
    )
    assert part.status_code == 200
    store: LocalStore = services.store
    assert store.list(f"uploads/{upload['id']}/")
    with services.sessions() as session, session.begin():  # abandoned: its hour is over
        session.execute(update(Upload).values(expires_at=Upload.created_at - 1))
    scheduler = Scheduler(
        services.settings, services.sessions, store, registry={}, executor=_NoExecutor()
    )
    report = scheduler.tick()
    assert report.swept_uploads == 1 and "sweep" not in report.failed_stages
    assert store.list(f"uploads/{upload['id']}/") == []
    again = api.http.get("/v1/models", headers=api.auth())  # nothing else was disturbed
    assert again.status_code == 200


class _NoExecutor:
    capacity = 0

    def running(self) -> list[object]:
        return []

    def poll(self, handle: str) -> object:
        raise AssertionError("no attempt runs")

    def kill(self, handle: str) -> None:
        pass

    def launch(self, attempt: object) -> str:
        raise AssertionError("nothing is launched")


def test_limits_are_on_by_default() -> None:
    settings = Settings()
    assert settings.rate_limit_requests_per_minute >= 600
    assert settings.quota_queued_jobs >= 100 and settings.quota_running_jobs >= 4
    assert settings.quota_storage_bytes >= 10 * 1024**3
    assert settings.webhook_max_endpoints_per_project >= 10
    assert not settings.webhook_allow_private_urls
