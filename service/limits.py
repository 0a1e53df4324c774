"""Per-key request rate limits and per-project quotas, answered as OpenAI's API does.

Rate limit (`WHETSTONE_RATE_LIMIT_REQUESTS_PER_MINUTE`, `..._BURST`): one token bucket per
verified API key (by the key's hash; the key itself is never kept), in this process: with
several API replicas behind a load balancer, each counts its own requests, so a key gets up
to the limit times the replicas. A request whose key this process has not yet seen accepted
(no key, a random one, or a real key's first request) is counted against its client
address as well, so inventing a key per request buys nothing. Over it: 429, OpenAI's
`{"error": {"type": "requests", "code": "rate_limit_exceeded"}}`, and `retry-after` (whole
seconds) and `retry-after-ms`, which the openai package waits for before it retries.
Checked before authentication, so that a burst costs no database work; only `/v1/...`
counts.

Quotas (`WHETSTONE_QUOTA_*`, 0 is none): queued jobs and stored file bytes are checked when a
job is created, a file uploaded or an upload (Uploads API) created, whose declared `bytes`
count from then on (400 `quota_exceeded`, naming the setting); running jobs
are the scheduler's to hold back (`service.fine_tuning.repository.next_claimable`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import InvalidRequest, error_body
from service.files import repository as files_repo
from service.files import upload_repository as uploads_repo
from service.fine_tuning import repository as jobs_repo

MAX_BUCKETS = 100_000  # keys remembered at once; the least recently used are forgotten


class TokenBucket:
    """`rate` tokens per second up to `size`; `take()` returns 0 (taken) or the seconds
    until one token is there."""

    def __init__(self, rate: float, size: int, clock: Callable[[], float]) -> None:
        self.rate, self.size, self.clock = rate, size, clock
        self.tokens = float(size)
        self.at = clock()

    def take(self) -> float:
        now = self.clock()
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key, `per_minute` requests a minute, `burst` at once; the keys that
    authentication accepted (`verified`) are told apart from the rest, which share their
    client address's bucket too."""

    def __init__(
        self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst or per_minute
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._verified: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def verified(self, key: str) -> None:
        """Authentication accepted `key`: from now on it is limited on its own bucket."""
        digest = _digest(key)
        with self._lock:
            self._verified[digest] = None
            self._verified.move_to_end(digest)
            if len(self._verified) > MAX_BUCKETS:
                self._verified.popitem(last=False)

    def wait_for_request(self, key: str | None, address: str) -> float:
        """0 when the request may go on (it is counted), else the seconds to wait: a verified
        key's bucket; otherwise the address's bucket first, then the key's, if any."""
        if key is not None:
            digest = _digest(key)
            with self._lock:
                known = digest in self._verified
            if known:
                return self._take("key:" + digest)
        wait = self._take("addr:" + address)
        if wait > 0 or key is None:
            return wait
        return self._take("key:" + _digest(key))

    def wait_for(self, key: str) -> float:
        """0 when `key` may make a request now (it is counted), else the seconds to wait."""
        return self._take("key:" + _digest(key))

    def _take(self, name: str) -> float:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = TokenBucket(self.per_minute / 60, self.burst, self.clock)
                self._buckets[name] = bucket
                if len(self._buckets) > MAX_BUCKETS:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(name)
            return bucket.take()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mark_verified(request: Request, key: str) -> None:
    """Tell this app's rate limiter, if any, that authentication accepted `key`."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if isinstance(limiter, RateLimiter):
        limiter.verified(key)


def rate_limited_body(per_minute: int, wait: float) -> dict[str, object]:
    message = (
        f"Rate limit reached for this API key on requests per min (RPM): Limit {per_minute}. "
        f"Please try again in {wait:.3g}s."
    )
    return error_body(message, "requests", None, "rate_limit_exceeded")


class RateLimitMiddleware:
    """429 for a key (or, before a key is verified, a client address) over its rate on
    `/v1/...`; every other path passes."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        wait = self.limiter.wait_for_request(_bearer(scope), address)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        body = json.dumps(rate_limited_body(self.limiter.per_minute, wait)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, math.ceil(wait))).encode()),
            (b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key.strip() or None if scheme.lower() == "bearer" else None
    return None


# --- Quotas --------------------------------------------------------------------------------


def quota_exceeded(message: str, setting: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(
        f"{message} (the quota WHETSTONE_{setting.upper()}).", param=param, code="quota_exceeded"
    )


def check_queued_jobs(session: Session, project_id: str, limit: int) -> None:
    """400 when the project already has `limit` jobs waiting to train (0: no limit)."""
    if limit <= 0:
        return
    waiting = jobs_repo.count_waiting(session, project_id)
    if waiting >= limit:
        raise quota_exceeded(
            f"This project has {waiting} fine-tuning jobs waiting to train, the most it may "
            f"have at once is {limit}: wait for one to start, or cancel one",
            "quota_queued_jobs",
        )


def stored_bytes(session: Session, project_id: str) -> int:
    """The project's files, and the `bytes` its pending uploads (Uploads API) declared: an
    upload holds its room from creation, so parts can never take a project past its quota."""
    pending = uploads_repo.pending_bytes(session, project_id)
    return files_repo.stored_bytes(session, project_id) + pending


def storage_left(session: Session, project_id: str, limit: int) -> int | None:
    """Bytes the project may still upload; None: no limit."""
    if limit <= 0:
        return None
    return max(0, limit - stored_bytes(session, project_id))


def storage_exceeded(size: int, left: int, limit: int, param: str = "file") -> InvalidRequest:
    return quota_exceeded(
        f"This file ({size} bytes) does not fit in the project's file storage: "
        f"{left} of {limit} bytes are left (files and pending uploads); delete files or "
        "cancel uploads to make room",
        "quota_storage_bytes",
        param=param,
    )
