"""A cap on the bytes of a request's line and headers, which uvicorn's httptools parser does
not have (a 5 MB header is read whole, into memory).

`capped_http(max_bytes)` is the `http` protocol class for `uvicorn.Config`: uvicorn's own
httptools protocol, counting what arrives before the headers end. Past `max_bytes` it
answers 431 in OpenAI's error shape and closes the connection; reads are at most a socket
buffer long, so no more than one read past the cap is ever held.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 64 * 1024


def too_large_response(max_bytes: int) -> bytes:
    body = json.dumps({
        "error": {
            "message": f"Request header fields too large: the request line and headers may "
            f"hold at most {max_bytes} bytes.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_header_fields_too_large",
        }
    }).encode()  # fmt: skip
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def capped_http(max_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the request line and headers capped at `max_bytes`."""

    class CappedHttpTools(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > max_bytes and not self.transport.is_closing():
                self.transport.write(too_large_response(max_bytes))
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head, self._head_bytes = False, 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True  # the next request on this connection starts with its head

    return CappedHttpTools
