"""`x-request-id` on every response, as OpenAI's API sends it (`req_` and 32 hex digits).

The request's own `x-request-id` is kept when it is sane (1 to 128 letters, digits and
`._:-`), so that a caller or a proxy can follow one request through the logs; otherwise
one is made. The id is in `request.state.request_id` and in `service.logs.request_id` for
the log lines of the request; a job's URL also sets `service.logs.job_id`. A pure ASGI
middleware: errors rendered below it (every 4xx, the rate limit's 429) carry the header;
the 500 handler outside it adds the header itself (`service.errors`).
"""

from __future__ import annotations

import re
import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs

HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JOB_PATH = re.compile(r"^/(?:v1/fine_tuning|internal/v1)/jobs/([A-Za-z0-9_\-]+)")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(16)


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given: str = value.decode("latin-1").strip()
            if _SANE.fullmatch(given):
                return given
            break
    return new_request_id()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = rid
        match = _JOB_PATH.match(scope.get("path", ""))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        token = logs.request_id.set(rid)
        job = logs.job_id.set(match.group(1)) if match else None
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if job is not None:
                logs.job_id.reset(job)
            logs.request_id.reset(token)
