"""The outbox: the deliveries a job's end owes, written in the transaction that ends it.

`service.fine_tuning.service.transition` calls `enqueue` on every move to a final status, so the
event exists if and only if the job's end was committed; the scheduler's deliverer
(`service.webhooks.deliverer`) sends them afterwards.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.db.tables import FineTuningJob, WebhookDelivery
from service.fine_tuning.status import JobStatus
from service.ids import now
from service.webhooks import events
from service.webhooks import repository as repo


def enqueue(session: Session, job: FineTuningJob, status: JobStatus) -> int:
    """One pending delivery per endpoint of the job's project that asked for this event
    (one event id for all of them); returns how many."""
    event_type = events.event_type_for(status)
    if event_type is None:
        return 0
    endpoints = repo.subscribed(session, job.project_id, event_type)
    if not endpoints:
        return 0
    event_id, when = events.new_event_id(), now()
    payload = events.body(event_id, event_type, job.finished_at or when, job.id)
    for endpoint in endpoints:
        repo.add_delivery(
            session,
            WebhookDelivery(
                id=events.new_webhook_id(), endpoint_id=endpoint.id, job_id=job.id,
                event_id=event_id, event_type=event_type, payload=payload,
                status=repo.PENDING, attempts=0, next_attempt_at=when, created_at=when,
            ),
        )  # fmt: skip
    return len(endpoints)
