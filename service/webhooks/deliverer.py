"""The deliverer: POSTs the outbox's due deliveries, in the scheduler's process.

Every round (`webhook_poll_seconds`) locks the pending deliveries that are due (Postgres:
`FOR UPDATE SKIP LOCKED`, so several schedulers share the outbox), counts an attempt on each
and moves its `next_attempt_at` past the attempt's own timeout (a process that dies while
sending leaves a row that is retried then), commits, and hands each to a pool of
`webhook_concurrency` threads, at most one per endpoint and `webhook_concurrency_per_project`
per project (a project's slow endpoints leave the other slots to other projects). Each
connection goes through `service.webhooks.targets`: to a checked public address only (unless
`webhook_allow_private_urls`), never following a redirect. An attempt that gets a 2xx within
`webhook_timeout_seconds` is `delivered`; any other outcome waits for the next step of
`webhook_retry_seconds`, and after the last one the delivery is `failed` and the job gets
the event `Webhook delivery to URL failed after N attempts: ...`, which says what kind of
failure it was (a status, a timeout, no connection, a refused address) and never what the
other end sent or which error its network gave (a project must not learn the deployment's
inside from its webhooks' failures). Everything is in rows:
a restarted scheduler carries on where the last one stopped, with the same `webhook-id`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service import metrics
from service.fine_tuning.repository import find_job
from service.fine_tuning.service import add_event
from service.ids import now
from service.webhooks import events, targets
from service.webhooks import repository as repo
from service.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)
LEASE_MARGIN_SECONDS = 30
"""Beyond the attempt's timeout, how long a delivery on its way is left alone by others."""


@dataclass(frozen=True)
class Attempt:
    webhook_id: str
    endpoint_id: str
    project_id: str
    url: str
    secret: str
    payload: str
    number: int


class WebhookDeliverer:
    """Sends due deliveries from a bounded pool; `run_forever` loops, `deliver_due` is one
    round that waits for its attempts (tests, tools)."""

    def __init__(
        self,
        settings: WebhookSettings,
        sessions: sessionmaker[Session],
        client: httpx.Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.retry_seconds = list(settings.webhook_retry_seconds)
        self.timeout = settings.webhook_timeout_seconds
        self.concurrency = settings.webhook_concurrency
        self.per_project = settings.webhook_concurrency_per_project
        self.poll_seconds = settings.webhook_poll_seconds
        self._client = client or targets.client(self.timeout, settings.webhook_allow_private_urls)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook")
        self._busy: dict[str, str] = {}  # endpoint -> project, attempts on their way from here
        self._lock = threading.Lock()

    # --- Rounds ------------------------------------------------------------------------------

    def start_due(self) -> list[Future[None]]:
        """Lock the due deliveries the pool has room for, and start them."""
        with self._lock:
            busy = dict(self._busy)
        room = self.concurrency - len(busy)
        if room <= 0:
            return []
        attempts = self._take(room, busy)
        futures = []
        for attempt in attempts:
            with self._lock:
                self._busy[attempt.endpoint_id] = attempt.project_id
            futures.append(self._pool.submit(self._run, attempt))
        return futures

    def deliver_due(self) -> int:
        """One round, waiting for its attempts; returns how many were made."""
        futures = self.start_due()
        wait(futures)
        return len(futures)

    def run_forever(self, stop: threading.Event) -> None:
        """Rounds every `webhook_poll_seconds` until `stop` is set; errors are logged."""
        while not stop.is_set():
            try:
                self.start_due()
            except Exception:
                log.exception("webhook delivery round failed")
            stop.wait(self.poll_seconds)

    def close(self) -> None:
        """Wait for the attempts on their way (each bounded by the timeout), then release."""
        self._pool.shutdown(wait=True)
        self._client.close()

    # --- One delivery ------------------------------------------------------------------------

    def _take(self, room: int, busy: dict[str, str]) -> list[Attempt]:
        when = now()
        in_flight: dict[str, int] = {}
        for project_id in busy.values():
            in_flight[project_id] = in_flight.get(project_id, 0) + 1
        with self.sessions() as session, session.begin():
            taken = repo.lock_due(session, when, room, busy, in_flight, self.per_project)
            for delivery, _ in taken:
                delivery.attempts += 1
                delivery.next_attempt_at = when + int(self.timeout) + LEASE_MARGIN_SECONDS
            return [
                Attempt(d.id, e.id, e.project_id, e.url, e.secret, d.payload, d.attempts)
                for d, e in taken
            ]

    def _run(self, attempt: Attempt) -> None:
        try:
            error = self._post(attempt)
            self._record(attempt, error)
        except Exception:
            log.exception("webhook delivery %s to %s", attempt.webhook_id, attempt.url)
        finally:
            with self._lock:
                self._busy.pop(attempt.endpoint_id, None)

    def _post(self, attempt: Attempt) -> str | None:
        """None when the endpoint answered 2xx in time; else what went wrong."""
        headers = events.headers(
            attempt.secret, attempt.webhook_id, int(time.time()), attempt.payload
        )
        try:
            with self._client.stream(
                "POST", attempt.url, content=attempt.payload.encode(), headers=headers
            ) as response:  # the body is not read: only the status counts
                status = response.status_code
        except targets.RefusedTarget as e:
            return f"refused: {e} (webhooks go to public addresses only)"
        except httpx.TimeoutException:
            return f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as e:  # its text (the network's own words) stays in the log
            log.info("webhook %s to %s: %r", attempt.webhook_id, attempt.url, e)
            return "could not connect" if isinstance(e, httpx.ConnectError) else "request failed"
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _record(self, attempt: Attempt, error: str | None) -> None:
        with self.sessions() as session, session.begin():
            delivery = repo.get_delivery(session, attempt.webhook_id)
            if delivery is None or delivery.status != repo.PENDING:
                return  # its endpoint was deleted meanwhile
            if error is None:
                delivery.status, delivery.delivered_at, delivery.last_error = (
                    repo.DELIVERED, now(), None,
                )  # fmt: skip
                metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
                return
            delivery.last_error = error
            if delivery.attempts <= len(self.retry_seconds):
                delivery.next_attempt_at = now() + self.retry_seconds[delivery.attempts - 1]
                log.info("webhook %s to %s: %s; retrying", attempt.webhook_id, attempt.url, error)
                metrics.WEBHOOK_DELIVERIES.labels(outcome="retrying").inc()
                return
            delivery.status = repo.FAILED
            metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
            job = find_job(session, delivery.job_id)
            if job is not None:
                add_event(
                    session, job,
                    f"Webhook delivery to {attempt.url} failed after {delivery.attempts} "
                    f"attempts: {error}",
                    level="warn",
                    data={"webhook_id": delivery.id, "event_type": delivery.event_type},
                )  # fmt: skip
