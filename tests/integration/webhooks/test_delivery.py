"""Webhook deliveries from the outbox, on a real PostgreSQL, to real HTTP receivers, checked
with the `openai` package's own `client.webhooks.unwrap`."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)
from sqlalchemy import select

from service.db.tables import WebhookDelivery
from service.webhooks.deliverer import WebhookDeliverer

from .conftest import UNWRAP, Db, end, endpoint, job, messages, settings
from .receiver import Received, Receiver, receiver


def deliver_until(deliverer: WebhookDeliverer, target: Receiver, count: int) -> list[Received]:
    """Rounds until `target` got `count` deliveries (retries wait whole seconds)."""
    deadline = time.monotonic() + 20
    while len(target.got) < count and time.monotonic() < deadline:
        deliverer.deliver_due()
        time.sleep(0.1)
    return target.wait_for(count, timeout=0)


def _deliveries(outcome: str) -> float:
    """`whetstone_webhook_deliveries_total{outcome}` as /metrics would show it."""
    from service.metrics import REGISTRY

    value = REGISTRY.get_sample_value("whetstone_webhook_deliveries_total", {"outcome": outcome})
    return value or 0.0


def test_a_refused_delivery_is_retried_with_the_same_id_and_verifies(db: Db) -> None:
    before = {o: _deliveries(o) for o in ("retrying", "delivered")}
    with receiver(statuses=[500]) as hook:
        secret = endpoint(db, "alpha", hook.url)
        job_id = job(db)
        end(db, job_id, "succeeded")
        deliverer = WebhookDeliverer(settings(), db.sessions)
        try:
            first, second = deliver_until(deliverer, hook, 2)
        finally:
            deliverer.close()
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.body == second.body
        event = UNWRAP.unwrap(second.body, second.headers, secret=secret)
        assert isinstance(event, FineTuningJobSucceededWebhookEvent)
        assert event.data.id == job_id and event.id.startswith("evt_")
        assert json.loads(second.body)["object"] == "event"
        with pytest.raises(openai.InvalidWebhookSignatureError):
            UNWRAP.unwrap(second.body, second.headers, secret=endpoint(db, "alpha", hook.url))
        with db.sessions() as session:
            row = session.scalars(select(WebhookDelivery)).one()
            assert (row.status, row.attempts) == ("delivered", 2)
    assert _deliveries("retrying") - before["retrying"] == 1
    assert _deliveries("delivered") - before["delivered"] == 1


def test_cancelled_and_failed_jobs_send_their_events(db: Db) -> None:
    with receiver() as hook:
        secret = endpoint(db, "alpha", hook.url)
        cancelled, failed, other = job(db), job(db), job(db)
        end(db, cancelled, "cancelled")
        end(db, failed, "failed")
        deliverer = WebhookDeliverer(settings(), db.sessions)
        try:
            got = deliver_until(deliverer, hook, 2)
        finally:
            deliverer.close()
        events = {
            e.data.id: e for e in (UNWRAP.unwrap(r.body, r.headers, secret=secret) for r in got)
        }
        assert isinstance(events[cancelled], FineTuningJobCancelledWebhookEvent)
        assert isinstance(events[failed], FineTuningJobFailedWebhookEvent)
        assert other not in events  # still running: nothing to say


def test_an_endpoint_gets_only_the_events_it_asked_for_and_only_its_project(db: Db) -> None:
    with receiver() as mine, receiver() as only_failures, receiver() as theirs:
        endpoint(db, "alpha", mine.url)
        endpoint(db, "alpha", only_failures.url, ["fine_tuning.job.failed"])
        endpoint(db, "beta", theirs.url)
        end(db, job(db, "alpha"), "succeeded")
        deliverer = WebhookDeliverer(settings(), db.sessions)
        try:
            deliver_until(deliverer, mine, 1)
            deliverer.deliver_due()
        finally:
            deliverer.close()
        assert theirs.got == [] and only_failures.got == []


def test_giving_up_after_the_last_retry_writes_a_job_event(db: Db) -> None:
    with receiver(statuses=[500, 503, 500, 500]) as hook:
        endpoint(db, "alpha", hook.url)
        job_id = job(db)
        end(db, job_id, "cancelled")
        deliverer = WebhookDeliverer(settings(webhook_retry_seconds=[1, 1]), db.sessions)
        try:
            deliver_until(deliverer, hook, 3)
            time.sleep(1.2)  # past the last retry step (1 s): a fourth attempt would be due now
            assert deliverer.deliver_due() == 0  # given up: no fourth attempt
        finally:
            deliverer.close()
        assert len(hook.got) == 3
        assert f"Webhook delivery to {hook.url} failed after 3 attempts: HTTP 500" in messages(
            db, job_id
        )


def test_a_slow_endpoint_holds_up_no_other(db: Db) -> None:
    """Two endpoints that each answer only once the other has its delivery: a deliverer that
    waited for one before sending to the other would have neither answered (until its
    timeout, beyond the test's waits). An endpoint that never answers ends at the timeout."""
    both_got = threading.Event()
    with receiver(gate=both_got) as slow, receiver(gate=both_got) as fast:
        endpoint(db, "alpha", slow.url)
        endpoint(db, "alpha", fast.url)
        end(db, job(db), "succeeded")
        deliverer = WebhookDeliverer(settings(webhook_timeout_seconds=60), db.sessions)
        try:
            futures = deliverer.start_due()
            assert len(futures) == 2
            fast.wait_for(1)
            slow.wait_for(1)
            both_got.set()
            for future in futures:
                future.result(timeout=20)
        finally:
            both_got.set()
            deliverer.close()
    never = threading.Event()
    with receiver(gate=never) as silent:
        endpoint(db, "beta", silent.url)
        end(db, job(db, "beta"), "succeeded")
        deliverer = WebhookDeliverer(settings(webhook_timeout_seconds=1), db.sessions)
        try:
            (future,) = deliverer.start_due()
            future.result(timeout=20)  # ends at its 1 s timeout, not at an answer
        finally:
            never.set()
            deliverer.close()
    with db.sessions() as session:
        rows = {r.status: r for r in session.scalars(select(WebhookDelivery))}
    assert set(rows) == {"delivered", "pending"}
    assert rows["pending"].last_error == "no answer within 1 s"
