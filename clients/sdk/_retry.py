"""When to retry a request and how long to wait first (exponential backoff with jitter).

Retried: connection errors, timeouts, 408, 409, 429 and 5xx. A `Retry-After` (seconds or an
HTTP date) or `Retry-After-Ms` header of up to a minute is honoured as given; otherwise the
wait is 0.5 s doubled each attempt, capped at 8 s, less up to 25 % of jitter.
"""

from __future__ import annotations

import email.utils
import random
import time

import httpx

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def should_retry(response: httpx.Response) -> bool:
    """True when the status (or the server's `x-should-retry` header) says try again."""
    hint = response.headers.get("x-should-retry")
    if hint == "true":
        return True
    if hint == "false":
        return False
    return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500


def retry_delay(attempt: int, headers: httpx.Headers | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1` (attempt counts from 0)."""
    after = _retry_after(headers) if headers is not None else None
    if after is not None and 0 <= after <= MAX_RETRY_AFTER:
        return after
    delay = min(INITIAL_DELAY * 2.0**attempt, MAX_DELAY)
    return delay * (1.0 - 0.25 * random.random())


def _retry_after(headers: httpx.Headers) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())
