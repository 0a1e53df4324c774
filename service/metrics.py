"""Prometheus metrics: `GET /metrics` (text format 0.0.4), never behind project keys.

Two kinds, because the API and the scheduler may be separate processes
(`python -m service` and `python -m service.scheduler`) or one (`whetstone up`):

- Counted from the database when scraped, so any API replica tells the whole truth:
  `whetstone_fine_tuning_jobs{status}` (jobs per status, one `GROUP BY`) and
  `whetstone_trained_tokens_total` (the sum over succeeded jobs). `whetstone_vllm_up
  {base_model}` asks the local supervisor, or each configured vLLM's `/health` (1 s).
- Observed by the process where the event happens, in `REGISTRY`:
  `whetstone_job_queue_wait_seconds` (when a job starts running: since it was queued; the
  scheduler), `whetstone_job_run_seconds{outcome}` (when it stops running; a trainer's
  `finished` and `failed` reports and the user's cancel reach the API, a lost or crashed
  attempt the scheduler), `whetstone_trainer_tokens_per_second{job_id,base_model}` (the
  trainer's metrics reports, in the API; dropped when the job stops running) and
  `whetstone_webhook_deliveries_total{outcome}` (the webhook sender increments it). A
  separate scheduler serves its own with `WHETSTONE_METRICS_PORT`: scrape both and `sum`.
  Prometheus multiprocess mode is not used: the processes may be on different machines.

Per-route HTTP metrics (`http_requests_total{handler,method,status}`,
`http_request_duration_seconds`) come from prometheus-fastapi-instrumentator's middleware,
in the same registry. `WHETSTONE_METRICS_TOKEN` asks scrapers for a bearer
token; `WHETSTONE_METRICS_PORT` moves `/metrics` to a port of its own.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.db.tables import FineTuningJob
from service.errors import error_body
from service.fine_tuning import repository as jobs_repo
from service.fine_tuning.status import JobStatus
from serving.launcher import http_client

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from service.deps import Services

log = logging.getLogger(__name__)
PATH = "/metrics"
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 86400)
RUN_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 86400)

# --- What this process observes ------------------------------------------------------------

REGISTRY = CollectorRegistry(auto_describe=True)
QUEUE_WAIT = Histogram(
    "whetstone_job_queue_wait_seconds",
    "Seconds a job waited queued before an attempt started running.",
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "whetstone_job_run_seconds",
    "Seconds an attempt ran, by what the job became when it stopped running.",
    ["outcome"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
TOKENS_PER_SECOND = Gauge(
    "whetstone_trainer_tokens_per_second",
    "Training throughput of each running job, from its trainer's latest metrics report.",
    ["job_id", "base_model"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "whetstone_webhook_deliveries",
    "Webhook deliveries, by outcome (`delivered`, `failed`, `retrying`, ...).",
    ["outcome"],
    registry=REGISTRY,
)


def job_transition(job: FineTuningJob, old: JobStatus, new: JobStatus, at: float) -> None:
    """Called by `service.fine_tuning.service.transition` before it changes the row: `updated_at`
    is still the time of the job's previous transition."""
    since = max(0.0, at - job.updated_at)
    if new is JobStatus.RUNNING and old is JobStatus.QUEUED:
        QUEUE_WAIT.observe(since)
    elif old is JobStatus.RUNNING and new is not JobStatus.RUNNING:
        RUN_SECONDS.labels(outcome=new.value).observe(since)
        forget_job(job)


def trainer_throughput(job: FineTuningJob, tokens_per_second: float) -> None:
    TOKENS_PER_SECOND.labels(job_id=job.id, base_model=job.base_model).set(tokens_per_second)


def forget_job(job: FineTuningJob) -> None:
    try:
        TOKENS_PER_SECOND.remove(job.id, job.base_model)
    except KeyError:
        pass


# --- Read at scrape time ---------------------------------------------------------------------


class _Forward(Collector):
    """`REGISTRY`'s metrics, inside an app's own registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class DatabaseCollector(Collector):
    """Job counts and trained tokens from the database: two aggregate queries a scrape."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services

    def describe(self) -> Iterable[Metric]:
        return []  # read only at scrape time, and only once the app has started

    def collect(self) -> Iterator[Metric]:
        services = self._services()
        if services is None:
            return
        jobs = GaugeMetricFamily(
            "whetstone_fine_tuning_jobs", "Fine-tuning jobs by status.", labels=["status"]
        )
        tokens = CounterMetricFamily(
            "whetstone_trained_tokens", "Tokens trained by the jobs that succeeded."
        )
        try:
            with services.sessions() as session:
                counts = jobs_repo.count_by_status(session)
                total = jobs_repo.trained_tokens(session)
        except Exception as e:  # the database is down: say so on the API's log, not as a 500
            log.warning("metrics: cannot count jobs: %s", e)
            return
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        tokens.add_metric([], total)
        yield jobs
        yield tokens


class VllmCollector(Collector):
    """`whetstone_vllm_up{base_model}`: 1 when the vLLM of a served base model answers."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        services = self._services()
        if services is None:
            return
        up = GaugeMetricFamily(
            "whetstone_vllm_up",
            "Whether the vLLM of each served base model is up (1) or not (0).",
            labels=["base_model"],
        )
        routes = services.serving.routes
        for name in sorted(services.registry):
            if routes.supervises(name):
                assert routes.supervisor is not None
                up.add_metric([name], 1.0 if routes.supervisor.is_ready(name) else 0.0)
            elif name in routes.urls:
                up.add_metric([name], 1.0 if _healthy(routes.urls[name]) else 0.0)
        yield up


def _healthy(address: str) -> bool:
    try:
        with http_client(address, timeout=1.0) as http:
            return http.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


# --- Wiring -----------------------------------------------------------------------------------


def app_registry(app: FastAPI) -> CollectorRegistry:
    """The registry an app exposes: its HTTP metrics, `REGISTRY`'s, and the scrape-time ones
    (which read `app.state.services`, there once the lifespan has started)."""

    def services() -> Services | None:
        return getattr(app.state, "services", None)

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Forward())
    registry.register(DatabaseCollector(services))
    registry.register(VllmCollector(services))
    return registry


def instrument(
    app: FastAPI, token: str | None, *, route: bool, host: str = "127.0.0.1"
) -> CollectorRegistry:
    """Add the HTTP metrics middleware to `app`; with `route`, answer `GET /metrics` on it
    (`refusal`: the token, and no metrics at all without one beyond loopback)."""
    from prometheus_fastapi_instrumentator import Instrumentator

    registry = app_registry(app)
    Instrumentator(excluded_handlers=[PATH], registry=registry).instrument(app)
    if route:

        @app.get(PATH, include_in_schema=False)
        def metrics(request: Request) -> Response:  # sync: the collectors query the database
            denied = refusal(request.headers.get("authorization"), token, host)
            if denied is not None:
                return denied
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry


def is_loopback(host: str) -> bool:
    """Whether an address to listen on is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def refusal(header: str | None, token: str | None, host: str) -> Response | None:
    """None when `/metrics` may answer: the token given, or no token set and the process
    listening on loopback only. Beyond loopback without a token, never (job counts, trained
    tokens and the jobs that run are the tenants' business): 403 saying what to set."""
    if token is None:
        return None if is_loopback(host) else _token_required(host)
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return None
    return _unauthorized()


def _token_required(host: str) -> Response:
    body = error_body(
        f"The metrics are served beyond loopback ({host}): set WHETSTONE_METRICS_TOKEN and "
        "scrape with Authorization: Bearer <token>.",
        "invalid_request_error",
        None,
        "metrics_token_required",
    )
    return Response(json.dumps(body), status_code=403, media_type="application/json")


def _unauthorized() -> Response:
    body = error_body(
        "This endpoint needs the metrics token: Authorization: Bearer WHETSTONE_METRICS_TOKEN.",
        "invalid_request_error",
        None,
        "invalid_metrics_token",
    )
    return Response(json.dumps(body), status_code=401, media_type="application/json")


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """`/metrics` of `registry` on a port of its own, in a daemon thread (`WHETSTONE_METRICS_
    PORT`, for the API and for a scheduler process)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, token: str | None):
        def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
            if environ.get("PATH_INFO", "/") != PATH:
                start_response("404 Not Found", [("content-type", "text/plain")])
                return [b"Not found: the metrics are at /metrics\n"]
            denied = refusal(environ.get("HTTP_AUTHORIZATION"), token, host)
            if denied is not None:
                status = "401 Unauthorized" if denied.status_code == 401 else "403 Forbidden"
                start_response(status, [("content-type", "application/json")])
                return [bytes(denied.body)]
            start_response("200 OK", [("content-type", CONTENT_TYPE_LATEST)])
            return [generate_latest(registry)]

        self.httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self.thread.start()
        log.info("metrics on http://%s:%d%s", host, port, PATH)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
