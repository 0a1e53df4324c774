"""Deliveries reach only the address they checked: a URL that is (or has come to resolve to)
an inside address gets nothing at delivery time, redirects are not followed, a project is
not told what the other end or its network said, and one project's slow endpoints leave
room for another's deliveries."""

from __future__ import annotations

import threading
import time

from sqlalchemy import update

from service.db.tables import WebhookDelivery, WebhookEndpoint
from service.keys import project_repository as projects
from service.webhooks import endpoints, targets
from service.webhooks.deliverer import WebhookDeliverer
from service.webhooks.schemas import CreateWebhookEndpointRequest

from .conftest import Db, end, endpoint, job, messages, settings
from .receiver import receiver

PUBLIC = "93.184.215.14"


def deliver_all(deliverer: WebhookDeliverer, rounds_until: float = 10) -> None:
    """Rounds until no delivery is pending (retries wait whole seconds)."""
    deadline = time.monotonic() + rounds_until
    while time.monotonic() < deadline:
        deliverer.deliver_due()
        with deliverer.sessions() as session:
            pending = session.query(WebhookDelivery).filter_by(status="pending").count()
        if pending == 0:
            return
        time.sleep(0.2)
    raise AssertionError("deliveries still pending")


def test_an_inside_address_gets_nothing_at_delivery_time(db: Db) -> None:
    with receiver() as hook:
        endpoint(db, "alpha", hook.url)  # made while the operator allowed it
        job_id = job(db)
        end(db, job_id, "succeeded")
        deliverer = WebhookDeliverer(settings(webhook_allow_private_urls=False), db.sessions)
        try:
            deliver_all(deliverer)
        finally:
            deliverer.close()
        assert hook.got == []
        (event,) = [m for m in messages(db, job_id) if m.startswith("Webhook delivery")]
        assert "refused: 127.0.0.1 is a loopback address" in event


def test_a_name_that_rebinds_to_an_inside_address_gets_nothing(db: Db) -> None:
    """The name resolved to a public address when the endpoint was made, and to the
    receiver's 127.0.0.1 when the delivery connects: the connection is never opened."""
    answers = {"n": 0}

    def rebinding(host: str, port: int) -> list[str]:
        answers["n"] += 1
        return [PUBLIC] if answers["n"] == 1 else ["127.0.0.1"]

    with receiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        with db.sessions() as session, session.begin():
            owner = projects.get_or_create_project(session, "alpha")
            request = CreateWebhookEndpointRequest(url=f"http://hooks.example.test:{port}/hook")
            endpoints.create(session, owner, request, resolver=rebinding)
        end(db, job(db), "succeeded")
        client = targets.client(2, allow_private=False, resolver=rebinding)
        deliverer = WebhookDeliverer(
            settings(webhook_allow_private_urls=False), db.sessions, client
        )
        try:
            deliver_all(deliverer)
        finally:
            deliverer.close()
        assert hook.got == [] and answers["n"] >= 2


def test_the_connection_goes_to_the_checked_address_with_the_urls_host(db: Db) -> None:
    with receiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        endpoint(db, "alpha", f"http://hooks.example.test:{port}/hook")
        end(db, job(db), "succeeded")
        client = targets.client(2, allow_private=True, resolver=lambda h, p: ["127.0.0.1"])
        deliverer = WebhookDeliverer(settings(), db.sessions, client)
        try:
            deliver_all(deliverer)
        finally:
            deliverer.close()
        (got,) = hook.got
        assert got.headers["host"] == f"hooks.example.test:{port}"


def test_a_redirect_is_not_followed(db: Db) -> None:
    with receiver() as inside, receiver(statuses=[302] * 3, location="") as hook:
        hook.location = inside.url
        endpoint(db, "alpha", hook.url)
        job_id = job(db)
        end(db, job_id, "succeeded")
        deliverer = WebhookDeliverer(settings(), db.sessions)
        try:
            deliver_all(deliverer)
        finally:
            deliverer.close()
        assert len(hook.got) == 3 and inside.got == []
        assert any(m.endswith("failed after 3 attempts: HTTP 302") for m in messages(db, job_id))


def test_a_failure_tells_the_project_neither_the_answer_nor_the_network_error(db: Db) -> None:
    with receiver(statuses=[500] * 3, answer=b"internal: redis at 10.0.0.9:6379") as hook:
        endpoint(db, "alpha", hook.url)
        endpoint(db, "alpha", "http://127.0.0.1:9/closed")  # nothing listens there
        job_id = job(db)
        end(db, job_id, "succeeded")
        deliverer = WebhookDeliverer(settings(), db.sessions)
        try:
            deliver_all(deliverer)
        finally:
            deliverer.close()
    events = [m for m in messages(db, job_id) if m.startswith("Webhook delivery")]
    assert sorted(e.rsplit(": ", 1)[1] for e in events) == ["HTTP 500", "could not connect"]
    assert not any("redis" in e or "Errno" in e or "refused" in e.lower() for e in events)


def test_one_projects_slow_endpoints_do_not_hold_up_anothers(db: Db) -> None:
    gate = threading.Event()
    with (
        receiver(gate=gate) as a1,
        receiver(gate=gate) as a2,
        receiver(gate=gate) as a3,
        receiver() as b,
    ):
        for hook in (a1, a2, a3):
            endpoint(db, "alpha", hook.url)
        endpoint(db, "beta", b.url)
        end(db, job(db, "alpha"), "succeeded")
        end(db, job(db, "beta"), "succeeded")
        with db.sessions() as session, session.begin():  # alpha's deliveries are due first
            alpha = select_endpoint_ids(session, "alpha")
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id.in_(alpha))
                .values(next_attempt_at=WebhookDelivery.next_attempt_at - 60)
            )
        deliverer = WebhookDeliverer(
            settings(webhook_concurrency=3, webhook_concurrency_per_project=2), db.sessions
        )
        try:
            deadline = time.monotonic() + 10
            while not b.got and time.monotonic() < deadline:
                deliverer.start_due()
                time.sleep(0.1)
            assert len(b.got) == 1, "beta's delivery waited for alpha's slow endpoints"
            assert len(a1.got) + len(a2.got) + len(a3.got) == 2
        finally:
            gate.set()
            deliverer.close()


def select_endpoint_ids(session: object, project: str) -> list[str]:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    owner = projects.get_or_create_project(session, project)
    rows = session.query(WebhookEndpoint.id).filter_by(project_id=owner.id)
    return [r[0] for r in rows]
