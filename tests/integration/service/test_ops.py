"""Operations in-process: x-request-id, `/metrics`, per-key rate limits, per-project quotas,
JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service import logs
from service.app import create_app
from service.db.tables import File, FineTuningJob
from service.fine_tuning import service as jobs
from service.fine_tuning.status import JobStatus
from service.settings import Settings
from tests.unit.service.conftest import ApiClient, create_key

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")
LINE = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
DATA = (json.dumps(LINE) + "\n").encode() * 10  # 760 bytes


def start(tmp_path: Path, **settings: object) -> Iterator[ApiClient]:
    config = Settings(data_dir=tmp_path / "data", **settings)  # type: ignore[arg-type]
    with TestClient(create_app(config), raise_server_exceptions=False) as http:
        yield ApiClient(http, config, create_key(http, "alpha"), create_key(http, "beta"))


def upload(api: ApiClient, data: bytes = DATA, key: str | None = None):  # type: ignore[no-untyped-def]
    return api.http.post(
        "/v1/files",
        headers=api.auth(key),
        files={"file": ("train.jsonl", data, "application/jsonl")},
        data={"purpose": "fine-tune"},
    )


def sdk(api: ApiClient, key: str | None = None, max_retries: int = 0) -> openai.OpenAI:
    """The openai package over the in-process app (TestClient is an httpx.Client)."""
    return openai.OpenAI(
        base_url="http://testserver/v1",
        api_key=key or api.key_a,
        http_client=api.http,
        max_retries=max_retries,
    )


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Parsed with prometheus-client's own parser: name -> [(labels, value)]."""
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


# --- x-request-id --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/models", 200),
        ("GET", "/v1/files/file-nope", 404),
        ("GET", "/v1/nowhere", 404),
        ("POST", "/internal/v1/jobs/ftjob-x/report", 401),
        ("GET", "/ui/", 200),
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
    ],
)
def test_every_response_has_a_request_id(
    api: ApiClient, method: str, path: str, status: int
) -> None:
    r = api.http.request(method, path, headers=api.auth() if path.startswith("/v1") else {})
    assert r.status_code == status
    assert REQUEST_ID.fullmatch(r.headers["x-request-id"])


def test_request_ids_differ_and_a_sane_given_one_is_echoed(api: ApiClient) -> None:
    made = {api.http.get("/v1/models", headers=api.auth()).headers["x-request-id"] for _ in "ab"}
    assert len(made) == 2
    given = {**api.auth(), "x-request-id": "trace-7f3a:1"}
    assert api.http.get("/v1/models", headers=given).headers["x-request-id"] == "trace-7f3a:1"
    insane = {**api.auth(), "x-request-id": "a b\tc" + "x" * 200}
    assert REQUEST_ID.fullmatch(api.http.get("/v1/models", headers=insane).headers["x-request-id"])


def test_a_server_error_has_a_request_id(api: ApiClient) -> None:
    @api.http.app.get("/v1/boom")  # type: ignore[attr-defined,untyped-decorator]
    def boom() -> None:
        raise RuntimeError("boom")

    r = api.http.get("/v1/boom", headers={"x-request-id": "req-500"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "req-500"


def test_the_openai_package_reads_the_request_id(api: ApiClient) -> None:
    file = sdk(api).files.create(file=("t.jsonl", DATA), purpose="fine-tune")
    assert REQUEST_ID.fullmatch(file._request_id or "")
    with pytest.raises(openai.NotFoundError) as error:
        sdk(api).files.retrieve("file-nope")
    assert REQUEST_ID.fullmatch(error.value.request_id or "")


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_count_jobs_from_the_database_without_a_project_key(api: ApiClient) -> None:
    file = upload(api).json()
    job = api.http.post(
        "/v1/fine_tuning/jobs",
        json={"model": "whetstone-tiny", "training_file": file["id"]},
        headers=api.auth(),
    ).json()
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        row = session.get(FineTuningJob, job["id"])
        jobs.transition(session, row, JobStatus.QUEUED)
        jobs.transition(session, row, JobStatus.RUNNING)
        jobs.mark_succeeded(session, row, trained_tokens=1234)
    upload(api)  # one more job, left validating
    api.http.post(
        "/v1/fine_tuning/jobs",
        json={"model": "whetstone-tiny", "training_file": file["id"]},
        headers=api.auth(),
    )
    r = api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    found = families(r.text)
    by_status = {labels["status"]: value for labels, value in found["whetstone_fine_tuning_jobs"]}
    assert by_status["succeeded"] == 1 and by_status["validating_files"] == 1
    assert by_status["failed"] == 0
    assert found["whetstone_trained_tokens"] == [({}, 1234.0)]
    assert any(labels["outcome"] == "succeeded" for labels, _ in found["whetstone_job_run_seconds"])
    assert any(labels.get("handler") == "/v1/files" for labels, _ in found["http_requests"])
    assert "whetstone_webhook_deliveries" in found


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  # http.server's name
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_metrics_tell_whether_each_base_models_vllm_is_up(tmp_path: Path) -> None:
    vllm = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=vllm.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{vllm.server_address[1]}"
    for api in start(tmp_path, vllm_urls={"whetstone-tiny": url}):
        assert families(api.http.get("/metrics").text)["whetstone_vllm_up"] == [
            ({"base_model": "whetstone-tiny"}, 1.0)
        ]
        vllm.shutdown()
        vllm.server_close()
        assert families(api.http.get("/metrics").text)["whetstone_vllm_up"] == [
            ({"base_model": "whetstone-tiny"}, 0.0)
        ]


@pytest.fixture()
def guarded(tmp_path: Path) -> Iterator[ApiClient]:
    yield from start(tmp_path, metrics_token="scrape-secret")


def test_the_metrics_token_guards_metrics_and_a_project_key_is_not_it(guarded: ApiClient) -> None:
    assert guarded.http.get("/metrics").status_code == 401
    r = guarded.http.get("/metrics", headers=guarded.auth())
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_metrics_token"
    ok = guarded.http.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert ok.status_code == 200 and "whetstone_fine_tuning_jobs" in ok.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "whetstone.internal"])
def test_beyond_loopback_metrics_need_a_token(tmp_path: Path, host: str) -> None:
    """Job counts, trained tokens and which jobs run are the tenants' business: an API
    listening beyond loopback serves no metrics until `WHETSTONE_METRICS_TOKEN` is set."""
    for api in start(tmp_path, host=host):
        r = api.http.get("/metrics")
        assert r.status_code == 403 and r.json()["error"]["code"] == "metrics_token_required"
        assert "WHETSTONE_METRICS_TOKEN" in r.json()["error"]["message"]
        assert api.http.get("/metrics", headers=api.auth()).status_code == 403
    for api in start(tmp_path / "with-token", host=host, metrics_token="scrape-secret"):
        assert api.http.get("/metrics").status_code == 401
        ok = api.http.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200


def test_on_loopback_metrics_need_no_token(tmp_path: Path) -> None:
    for api in start(tmp_path, host="127.0.0.1"):
        assert api.http.get("/metrics").status_code == 200


def test_the_metrics_port_beyond_loopback_needs_a_token_too() -> None:
    import httpx
    from prometheus_client import CollectorRegistry

    from service.metrics import MetricsServer
    from tests.conftest import free_port

    port = free_port()
    server = MetricsServer(CollectorRegistry(), "0.0.0.0", port, None)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "metrics_token_required"
    finally:
        server.stop()


# --- Rate limits -------------------------------------------------------------------------------


@pytest.fixture()
def limited(tmp_path: Path) -> Iterator[ApiClient]:
    yield from start(tmp_path, rate_limit_requests_per_minute=60, rate_limit_burst=3)


def test_a_burst_over_the_rate_is_429_with_retry_after(limited: ApiClient) -> None:
    codes = [limited.http.get("/v1/models", headers=limited.auth()).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    r = limited.http.get("/v1/models", headers=limited.auth())
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert 0 < int(r.headers["retry-after-ms"]) <= 1000
    assert REQUEST_ID.fullmatch(r.headers["x-request-id"])
    error = r.json()["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert "Limit 60" in error["message"] and error["param"] is None
    # Another key has its own bucket; paths outside /v1 are not counted.
    assert limited.http.get("/v1/models", headers=limited.auth(limited.key_b)).status_code == 200
    assert limited.http.get("/healthz").status_code == 200


def test_the_openai_package_sees_the_429_and_its_retry_waits_for_it(limited: ApiClient) -> None:
    for _ in range(3):
        sdk(limited).models.list()
    with pytest.raises(openai.RateLimitError) as error:
        sdk(limited).models.list()
    assert error.value.status_code == 429 and error.value.code == "rate_limit_exceeded"
    began = time.monotonic()
    assert sdk(limited, max_retries=2).models.list().data  # waits retry-after-ms, then succeeds
    assert time.monotonic() - began >= 0.5


# --- Quotas ------------------------------------------------------------------------------------


@pytest.fixture()
def quotas(tmp_path: Path) -> Iterator[ApiClient]:
    yield from start(tmp_path, quota_queued_jobs=1, quota_storage_bytes=len(DATA) * 2 - 1)


def test_the_queued_jobs_quota_refuses_one_more_and_names_itself(quotas: ApiClient) -> None:
    file = upload(quotas).json()
    body = {"model": "whetstone-tiny", "training_file": file["id"]}
    assert quotas.http.post("/v1/fine_tuning/jobs", json=body, headers=quotas.auth()).is_success
    r = quotas.http.post("/v1/fine_tuning/jobs", json=body, headers=quotas.auth())
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded" and error["type"] == "invalid_request_error"
    assert "WHETSTONE_QUOTA_QUEUED_JOBS" in error["message"]
    # Per project: beta may still queue one.
    other = upload(quotas, key=quotas.key_b).json()
    beta = {"model": "whetstone-tiny", "training_file": other["id"]}
    assert quotas.http.post(
        "/v1/fine_tuning/jobs", json=beta, headers=quotas.auth(quotas.key_b)
    ).is_success


def test_the_storage_quota_refuses_an_upload_and_stores_nothing(quotas: ApiClient) -> None:
    assert upload(quotas).is_success
    services = quotas.http.app.state.services  # type: ignore[attr-defined]
    r = upload(quotas)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded" and error["param"] == "file"
    assert "WHETSTONE_QUOTA_STORAGE_BYTES" in error["message"]
    assert len(services.store.list("files/")) == 1
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(File)) == 1
    assert upload(quotas, key=quotas.key_b).is_success  # another project's storage


# --- JSON log lines ----------------------------------------------------------------------------


def test_json_log_lines_carry_the_context_that_is_set() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.ops.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        token = logs.request_id.set("req_1")
        with logs.log_context(job="ftjob-1", project_id="proj-1"):
            logger.warning("inside %s", "the job")
        logs.request_id.reset(token)
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "inside the job" and inside["level"] == "warning"
    assert (inside["request_id"], inside["job_id"], inside["project"]) == (
        "req_1",
        "ftjob-1",
        "proj-1",
    )
    assert "request_id" not in outside and "job_id" not in outside


def test_the_running_jobs_quota_holds_a_project_back_not_the_others(api: ApiClient) -> None:
    from service.fine_tuning import repository as repo

    def queued_job(key: str) -> str:
        file = upload(api, key=key).json()
        body = {"model": "whetstone-tiny", "training_file": file["id"]}
        job_id: str = api.http.post(
            "/v1/fine_tuning/jobs", json=body, headers=api.auth(key)
        ).json()["id"]
        with services.sessions() as session, session.begin():
            jobs.transition(session, session.get(FineTuningJob, job_id), JobStatus.QUEUED)
        return job_id

    services = api.http.app.state.services  # type: ignore[attr-defined]
    first, second = queued_job(api.key_a), queued_job(api.key_a)
    with services.sessions() as session, session.begin():
        jobs.transition(session, session.get(FineTuningJob, first), JobStatus.RUNNING)
    beta = queued_job(api.key_b)
    with services.sessions() as session:
        held = repo.next_claimable(session, skip_locked=False, running_per_project=1)
        assert held is not None and held.id == beta  # alpha's second waits for its first
    with services.sessions() as session, session.begin():
        jobs.transition(session, session.get(FineTuningJob, beta), JobStatus.RUNNING)
    with services.sessions() as session:
        assert repo.next_claimable(session, skip_locked=False, running_per_project=1) is None
        free = repo.next_claimable(session, skip_locked=False, running_per_project=2)
        assert free is not None and free.id == second
