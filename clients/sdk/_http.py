"""The two transports: `SyncAPI` over an `httpx.Client`, `AsyncAPI` over an `httpx.AsyncClient`.

Each drives the same core (`_core.Exchange` for a call's tries, `_flow` for operations of
several steps) and does only the I/O: send, read, close, sleep. Every decision is the core's,
so both clients build the same requests, retry the same answers and raise the same errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from ._core import Call, Exchange, Options
from ._flow import Done, Emit, Feed, Outcome, Pause, Plan, Step, resume
from .pagination import AsyncPage, AsyncPaginator, Listing, SyncPage

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class SyncAPI:
    """Synchronous requests with retries; owns (or borrows) an `httpx.Client`."""

    sleep = staticmethod(time.sleep)
    """How retries and polls wait (the tests record the waits here instead)."""

    def __init__(self, options: Options, http_client: httpx.Client | None = None) -> None:
        self.options = options
        self._owns_client = http_client is None
        self._http = http_client or httpx.Client(timeout=options.timeout)

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """The call's successful response (retrying what may be retried), or its error."""
        exchange = Exchange(self.options, call)
        while True:
            request = exchange.request(self._http)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                self.sleep(exchange.after_transport_error(exc))
                continue
            verdict = exchange.judge(response)
            if verdict == "return":
                return response
            if verdict == "raise":
                response.read()
                raise exchange.error(response)
            response.close()
            self.sleep(verdict.seconds)

    def run(self, plan: Plan[T]) -> T:
        """What the operation gives: its call's result, or its flow's once it has run."""
        if isinstance(plan, Call):
            return plan.read(self.send(plan))
        last = Outcome()
        while not isinstance(step := resume(plan, last), Done):
            last = self._take(step)
        return step.value

    def feed(self, feed: Feed[T]) -> Iterator[T]:
        """The items the feed emits, as it emits them."""
        last = Outcome()
        try:
            while not isinstance(step := resume(feed, last), Done):
                if isinstance(step, Emit):
                    yield step.item
                    last = Outcome()
                else:
                    last = self._take(step)
        finally:
            feed.close()

    def page(self, listing: Listing[M]) -> SyncPage[M]:
        return SyncPage(self.run(listing.call()), self.page)

    def _take(self, step: Step) -> Outcome:
        try:
            if isinstance(step, Pause):
                self.sleep(step.seconds)
                return Outcome()
            return Outcome(self.run(step))
        except Exception as exc:
            return Outcome(error=exc)


class AsyncAPI:
    """Asynchronous requests with retries; owns (or borrows) an `httpx.AsyncClient`."""

    sleep = staticmethod(asyncio.sleep)
    """How retries and polls wait (the tests record the waits here instead)."""

    def __init__(self, options: Options, http_client: httpx.AsyncClient | None = None) -> None:
        self.options = options
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=options.timeout)

    async def close(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """The call's successful response (retrying what may be retried), or its error."""
        exchange = Exchange(self.options, call)
        while True:
            request = exchange.request(self._http)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                await self.sleep(exchange.after_transport_error(exc))
                continue
            verdict = exchange.judge(response)
            if verdict == "return":
                return response
            if verdict == "raise":
                await response.aread()
                raise exchange.error(response)
            await response.aclose()
            await self.sleep(verdict.seconds)

    async def run(self, plan: Plan[T]) -> T:
        """What the operation gives: its call's result, or its flow's once it has run."""
        if isinstance(plan, Call):
            return plan.read(await self.send(plan))
        last = Outcome()
        while not isinstance(step := resume(plan, last), Done):
            last = await self._take(step)
        return step.value

    async def feed(self, feed: Feed[T]) -> AsyncIterator[T]:
        """The items the feed emits, as it emits them."""
        last = Outcome()
        try:
            while not isinstance(step := resume(feed, last), Done):
                if isinstance(step, Emit):
                    yield step.item
                    last = Outcome()
                else:
                    last = await self._take(step)
        finally:
            feed.close()

    def page(self, listing: Listing[M]) -> AsyncPaginator[M]:
        return AsyncPaginator(self._first_page, listing)

    async def _first_page(self, listing: Listing[M]) -> AsyncPage[M]:
        return AsyncPage(await self.run(listing.call()), self._first_page)

    async def _take(self, step: Step) -> Outcome:
        try:
            if isinstance(step, Pause):
                await self.sleep(step.seconds)
                return Outcome()
            return Outcome(await self.run(step))
        except Exception as exc:
            return Outcome(error=exc)
