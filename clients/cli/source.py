"""The account `whetstone migrate` reads from: OpenAI, Azure OpenAI's v1 API or another
Whetstone, all through the SDK (they answer the same OpenAI-shaped paths).

Authentication: OpenAI and Whetstone take `Authorization: Bearer KEY`; Azure OpenAI takes
`api-key: KEY` (Bearer is for Entra ID tokens there). `auto` picks `api-key` for Azure's host
names and Bearer for every other host.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from urllib.parse import urlsplit

from clients.sdk import Whetstone

AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


class SourceAuth(StrEnum):
    auto = "auto"
    bearer = "bearer"
    api_key = "api-key"


def is_azure(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host.endswith(AZURE_HOSTS)


def source_url(base_url: str) -> str:
    """The source's API root: an Azure resource's bare address gets Azure's `/openai/v1`;
    any other address without `/v1` gets it from the SDK."""
    url = base_url.rstrip("/")
    if is_azure(url) and urlsplit(url).path in ("", "/"):
        return url + "/openai/v1"
    return url


def source_client(
    base_url: str, api_key: str, auth: SourceAuth = SourceAuth.auto, max_retries: int | None = None
) -> Whetstone:
    """An SDK client on the source account, with its key in the header the source reads."""
    header = auth
    if auth is SourceAuth.auto:
        header = SourceAuth.api_key if is_azure(base_url) else SourceAuth.bearer
    url = source_url(base_url)
    if header is SourceAuth.api_key:
        # api_key="" keeps WHETSTONE_API_KEY (the destination's key) out of the request.
        return Whetstone(
            base_url=url,
            api_key="",
            default_headers={"api-key": api_key},
            max_retries=max_retries,
        )
    return Whetstone(base_url=url, api_key=api_key, max_retries=max_retries)


class RewindError(RuntimeError):
    """A streamed upload was to be sent again (a retry) after its first bytes had gone."""


class ChunkReader:
    """A read-only file object over an iterator of byte chunks, for a multipart upload that
    streams one download into one upload: at most a chunk and a read are held in memory.

    It has no `tell` or `fileno`, so httpx sends it chunked without asking its length; it
    cannot rewind, so a retried upload raises `RewindError` instead of sending what is left
    as if it were the whole file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        self.sent += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0 and self.sent == 0:
            return 0
        raise RewindError(
            "the upload was interrupted after its first bytes and a stream cannot be sent "
            "again; run the command again"
        )


def lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a stream of chunks (without their `\\n`), one line in memory at a time."""
    tail = b""
    for chunk in chunks:
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        yield from parts
    if tail:
        yield tail
