"""Webhook endpoints and the outbox of deliveries: the queries of `service.webhooks`."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.pagination import Page, paginate
from service.db.tables import WebhookDelivery, WebhookEndpoint

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def add_endpoint(session: Session, row: WebhookEndpoint) -> WebhookEndpoint:
    session.add(row)
    session.flush()
    return row


def get_endpoint(session: Session, project_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    """The endpoint if it is this project's; another project's is `None` too."""
    return session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.project_id == project_id
        )
    )


def count_endpoints(session: Session, project_id: str) -> int:
    stmt = select(func.count()).where(WebhookEndpoint.project_id == project_id)
    return int(session.scalar(stmt) or 0)


def list_endpoints(
    session: Session, project_id: str, *, after: str | None, limit: int
) -> Page[WebhookEndpoint]:
    """Newest first."""
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id)
    return paginate(
        session,
        stmt,
        created_at=WebhookEndpoint.created_at,
        id_=WebhookEndpoint.id,
        after=after,
        limit=limit,
        order="desc",
    )


def delete_endpoint(session: Session, row: WebhookEndpoint) -> None:
    """The endpoint and its deliveries not made yet (the foreign key cascades)."""
    session.delete(row)
    session.flush()


def subscribed(session: Session, project_id: str, event_type: str) -> list[WebhookEndpoint]:
    """The project's endpoints that asked for `event_type` (filtered here: a JSON list)."""
    rows = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id))
    return [row for row in rows if event_type in row.event_types]


def add_delivery(session: Session, row: WebhookDelivery) -> None:
    session.add(row)


def lock_due(
    session: Session,
    when: int,
    limit: int,
    busy: Collection[str],
    in_flight: dict[str, int] | None = None,
    per_project: int | None = None,
) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Pending deliveries due at `when`, oldest first, locked (Postgres: rows another
    scheduler holds are skipped), at most one per endpoint and none for the `busy` ones;
    with `per_project`, at most that many per project counting its `in_flight` ones."""
    in_flight = dict(in_flight or {})
    stmt = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= when)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
        .limit(limit * 4)  # some may share an endpoint or a project
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    if busy:
        stmt = stmt.where(WebhookDelivery.endpoint_id.not_in(list(busy)))
    if per_project is not None:
        full = [p for p, n in in_flight.items() if n >= per_project]
        if full:
            stmt = stmt.where(WebhookEndpoint.project_id.not_in(full))
    chosen: list[tuple[WebhookDelivery, WebhookEndpoint]] = []
    taken: set[str] = set()
    for delivery, endpoint in session.execute(stmt).all():
        project_count = in_flight.get(endpoint.project_id, 0)
        if endpoint.id in taken or (per_project is not None and project_count >= per_project):
            continue
        taken.add(endpoint.id)
        in_flight[endpoint.project_id] = project_count + 1
        chosen.append((delivery, endpoint))
        if len(chosen) == limit:
            break
    return chosen


def get_delivery(session: Session, delivery_id: str) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id, with_for_update=True)
