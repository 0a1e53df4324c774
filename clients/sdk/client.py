"""`Whetstone` and `AsyncWhetstone`: the clients, shaped as the `openai` package's.

    client = Whetstone(base_url="http://127.0.0.1:8000", api_key="wh-...")
    file = client.files.create(file="train.jsonl", purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=file.id)
    job = client.fine_tuning.jobs.wait(job.id)

`base_url` and `api_key` fall back to `WHETSTONE_BASE_URL` and `WHETSTONE_API_KEY` (read
here, in the constructor, and nowhere else).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Generic

import httpx

from ._core import resolve_options
from ._http import AsyncAPI, SyncAPI
from ._resource import A
from .resources.chat import AsyncChat, Chat
from .resources.files import AsyncFiles, Files
from .resources.fine_tuning import FineTuning
from .resources.models import Models
from .resources.webhooks import Webhooks


class _Client(Generic[A]):
    """What both clients hold: their options and the resources written once for both."""

    def __init__(self, api: A) -> None:
        self._api = api
        self.base_url = api.options.base_url
        self.api_key = api.options.api_key
        self.max_retries = api.options.max_retries
        self.timeout = api.options.timeout
        self.fine_tuning = FineTuning(api)
        self.models = Models(api)
        self.webhooks = Webhooks(api)


class Whetstone(_Client[SyncAPI]):
    """Synchronous client. Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        options = resolve_options(base_url, api_key, timeout, max_retries, default_headers)
        super().__init__(SyncAPI(options, http_client))
        self.files = Files(self._api)
        self.chat = Chat(self._api)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Whetstone:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncWhetstone(_Client[AsyncAPI]):
    """Asynchronous client. Use it as an async context manager, or await `close()`."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        options = resolve_options(base_url, api_key, timeout, max_retries, default_headers)
        super().__init__(AsyncAPI(options, http_client))
        self.files = AsyncFiles(self._api)
        self.chat = AsyncChat(self._api)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> AsyncWhetstone:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
