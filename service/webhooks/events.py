"""The events, their bodies and their signatures, as OpenAI sends them.

A body is OpenAI's `FineTuningJob{Succeeded,Failed,Cancelled}WebhookEvent`:
`{"id": "evt_...", "object": "event", "created_at": ..., "type": "fine_tuning.job.succeeded",
"data": {"id": "ftjob-..."}}`. The signature is Standard Webhooks': `webhook-signature:
v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the
base64-decoded part of the `whsec_...` secret after its prefix, which is what the `openai`
package's `client.webhooks.unwrap(body, headers, secret=...)` checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from service.fine_tuning.status import JobStatus
from service.ids import random_part

SUCCEEDED = "fine_tuning.job.succeeded"
FAILED = "fine_tuning.job.failed"
CANCELLED = "fine_tuning.job.cancelled"
EVENT_TYPES = (SUCCEEDED, FAILED, CANCELLED)
"""Every event Whetstone sends, in the order an endpoint lists them by default."""

_FOR_STATUS = {JobStatus.SUCCEEDED: SUCCEEDED, JobStatus.FAILED: FAILED,
               JobStatus.CANCELLED: CANCELLED}  # fmt: skip
SECRET_PREFIX = "whsec_"


def event_type_for(status: JobStatus) -> str | None:
    """The event a job's move to `status` sends (None for a status that is not final)."""
    return _FOR_STATUS.get(status)


def new_event_id() -> str:
    return f"evt_{random_part()}"


def new_webhook_id() -> str:
    return f"wh_{random_part()}"


def new_secret() -> str:
    """`whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    return f"{SECRET_PREFIX}****{secret[-4:]}"


def body(event_id: str, event_type: str, created_at: int, job_id: str) -> str:
    """The JSON body, compact; stored verbatim, so every attempt signs the same bytes."""
    event = {"id": event_id, "object": "event", "created_at": created_at, "type": event_type,
             "data": {"id": job_id}}  # fmt: skip
    return json.dumps(event, separators=(",", ":"))


def signature(secret: str, webhook_id: str, timestamp: int, payload: str) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{webhook_id}.{timestamp}.{payload}`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.{payload}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, webhook_id: str, timestamp: int, payload: str) -> dict[str, str]:
    """The headers of one attempt: the same `webhook-id` on every attempt, a fresh
    timestamp (receivers refuse old ones) and its signature."""
    return {
        "content-type": "application/json",
        "user-agent": "Whetstone-Webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, payload),
    }
