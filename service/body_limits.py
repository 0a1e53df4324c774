"""Every request body is capped, and a caller without a known key is refused before a byte
of its body is read.

`BodyLimitMiddleware`, a pure ASGI middleware (a `BaseHTTPMiddleware` would hold a streamed
chat answer open, `service.chat.serving_client._Relay`), does both where the route is chosen:

- The key first: a request to `/v1/...` that carries a body (a `Content-Length` above 0, or
  chunked) and no key, or a key that is no project's or admin's, is answered 401 at once.
  FastAPI parses a route's JSON body before it solves the route's dependencies (the key),
  so without this any caller could make the API read and parse a body. The routes still
  check the key themselves (kind, archived project, revocation): this only admits the body.
- The size: a `Content-Length` over the route's cap is answered 413 before the body is read;
  a body without one (chunked) is counted as it is received and cut at the cap (413, the
  read raising `BodyTooLarge` wherever the route was reading it). Both close the
  connection, so what the caller still sends is never read.

Caps (`BodyLimits.of(settings)`): `POST /v1/files` `WHETSTONE_MAX_FILE_BYTES` plus the
form's allowance, an Upload's part 64 MiB plus the same, `/v1/chat/completions`
`WHETSTONE_MAX_CHAT_BODY_BYTES`, everything else `WHETSTONE_MAX_JSON_BODY_BYTES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidRequest, PayloadTooLarge, ServiceError
from service.files.multipart import FORM_MAX_FIELDS_BYTES
from service.files.uploads import PART_MAX_BYTES
from service.keys.checks import unknown_key
from service.keys.dependencies import bearer_key
from service.settings import Settings

FORM_ALLOWANCE = FORM_MAX_FIELDS_BYTES + 64 * 1024
"""What a multipart body may hold beside its file: the form's other fields and the part
headers and boundaries."""
_PART_PATH = re.compile(r"^/v1/uploads/[^/]+/parts/?$")
_CLOSE = (b"connection", b"close")


class BodyTooLarge(PayloadTooLarge):
    def __init__(self, cap: int) -> None:
        super().__init__(
            f"Request body too large: this endpoint accepts at most {cap} bytes.",
            code="request_too_large",
        )


@dataclass(frozen=True)
class BodyLimits:
    """The most bytes of a request body, per route."""

    json: int
    chat: int
    file: int
    part: int = PART_MAX_BYTES + FORM_ALLOWANCE

    @classmethod
    def of(cls, settings: Settings) -> BodyLimits:
        return cls(
            json=settings.max_json_body_bytes,
            chat=settings.max_chat_body_bytes,
            file=settings.max_file_bytes + FORM_ALLOWANCE,
        )

    def cap(self, method: str, path: str) -> int:
        if method == "POST":
            if path.rstrip("/") == "/v1/files":
                return self.file
            if _PART_PATH.match(path):
                return self.part
            if path.rstrip("/") == "/v1/chat/completions":
                return self.chat
        return self.json


KeyCheck = Callable[[Scope, str], bool]
"""Whether a bearer key is known (blocking: run in a worker thread)."""


def services_key_check(scope: Scope, key: str) -> bool:
    """The app's own answer: a live project's key or an admin key (`ChatAccess.knows`)."""
    return bool(scope["app"].state.services.chat_access.knows(key))


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, limits: BodyLimits, key_check: KeyCheck = services_key_check
    ) -> None:
        self.app = app
        self.limits = limits
        self.key_check = key_check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length, chunked = headers.get("content-length"), "transfer-encoding" in headers
        cap = self.limits.cap(scope["method"], scope["path"])
        try:
            declared = _declared(length)
            has_body = chunked or bool(declared)
            if has_body and scope["path"].startswith("/v1/"):
                await self._check_key(scope)
            if declared is not None and declared > cap:
                raise BodyTooLarge(cap)
        except ServiceError as e:
            await _refuse(send, e)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        await self._capped(scope, receive, send, cap)

    async def _check_key(self, scope: Scope) -> None:
        key = bearer_key(Request(scope))  # 401 without one
        if not await run_in_threadpool(self.key_check, scope, key):
            raise unknown_key(key)

    async def _capped(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        received, over, started, replaced = 0, False, False, False

        async def capped_receive() -> Message:
            nonlocal received, over
            if over:
                raise BodyTooLarge(cap)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    over = True
                    raise BodyTooLarge(cap)
            return message

        async def send_or_refuse(message: Message) -> None:
            # Past the cap, whatever the route answers (FastAPI turns a failed body read
            # into its own 400) is replaced by the 413, which closes the connection.
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                replaced = over and not started
                started = True
                if replaced:
                    await _refuse(send, BodyTooLarge(cap))
                    return
            elif replaced:
                return
            await send(message)

        try:
            await self.app(scope, capped_receive, send_or_refuse)
        except BodyTooLarge as e:
            if started:
                raise
            await _refuse(send, e)


def _declared(length: str | None) -> int | None:
    if length is None:
        return None
    if not length.isdigit():
        raise InvalidRequest("The Content-Length header is not a number of bytes.")
    return int(length)


async def _refuse(send: Send, error: ServiceError) -> None:
    """Answer `error` in OpenAI's shape and close the connection (the body stays unread)."""
    body = json.dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        _CLOSE,
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
