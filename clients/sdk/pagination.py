"""Cursor pages: iterate a page and the next pages are fetched for you (`after` = last id).

A `Listing` is a list endpoint's query for one page; reading its answer gives a `Page` (the
items, and the `Listing` of the next page). `SyncPage` is what a sync `list` returns. An async
`list` returns an `AsyncPaginator`: await it for the first `AsyncPage`, or `async for` over it
for every item of every page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from ._core import Call

M = TypeVar("M", bound=BaseModel)

Params = dict[str, Any]


@dataclass(frozen=True)
class Listing(Generic[M]):
    """One page of a list endpoint: its path, its items' model, its query."""

    path: str
    model: type[M]
    params: Params = field(default_factory=dict)

    def call(self) -> Call[Page[M]]:
        return Call("GET", self.path, self._read, params=self.params)

    def _read(self, response: httpx.Response) -> Page[M]:
        body: dict[str, Any] = response.json()
        cursor = _next_cursor(body)
        following = None
        if cursor is not None:
            following = replace(self, params={**self.params, "after": cursor})
        return Page(
            data=[self.model.model_validate(item) for item in body.get("data") or []],
            has_more=bool(body.get("has_more", False)),
            next=following,
        )


@dataclass(frozen=True)
class Page(Generic[M]):
    """A page as read: its items, and the listing of the next page (None after the last)."""

    data: list[M]
    has_more: bool
    next: Listing[M] | None


def _next_cursor(body: dict[str, Any]) -> str | None:
    """The `after` of the next page, or None when this is the last page."""
    data = body.get("data") or []
    if not body.get("has_more") or not data:
        return None
    last = body.get("last_id") or data[-1].get("id")
    return str(last) if last else None


class _PageView(Generic[M]):
    def __init__(self, page: Page[M]) -> None:
        self.data: list[M] = page.data
        self.has_more: bool = page.has_more
        self._next = page.next

    def has_next_page(self) -> bool:
        return self._next is not None


class SyncPage(_PageView[M]):
    """One page of a list; iterating it yields the items of this page and all later ones."""

    def __init__(self, page: Page[M], fetch: Callable[[Listing[M]], SyncPage[M]]) -> None:
        super().__init__(page)
        self._fetch = fetch

    def next_page(self) -> SyncPage[M]:
        if self._next is None:
            raise StopIteration("no more pages")
        return self._fetch(self._next)

    def iter_pages(self) -> Iterator[SyncPage[M]]:
        page = self
        yield page
        while page.has_next_page():
            page = page.next_page()
            yield page

    def __iter__(self) -> Iterator[M]:
        for page in self.iter_pages():
            yield from page.data


class AsyncPage(_PageView[M]):
    """One page of an async list; `async for` yields this page's items and all later ones."""

    def __init__(
        self, page: Page[M], fetch: Callable[[Listing[M]], Awaitable[AsyncPage[M]]]
    ) -> None:
        super().__init__(page)
        self._fetch = fetch

    async def next_page(self) -> AsyncPage[M]:
        if self._next is None:
            raise StopAsyncIteration("no more pages")
        return await self._fetch(self._next)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[M]]:
        page = self
        yield page
        while page.has_next_page():
            page = await page.next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[M]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item


class AsyncPaginator(Generic[M]):
    """What an async `list` returns: awaitable (first page) and async-iterable (all items)."""

    def __init__(
        self, fetch: Callable[[Listing[M]], Awaitable[AsyncPage[M]]], listing: Listing[M]
    ) -> None:
        self._fetch = fetch
        self._listing = listing

    def __await__(self) -> Generator[Any, None, AsyncPage[M]]:
        return self._fetch(self._listing).__await__()

    async def __aiter__(self) -> AsyncIterator[M]:
        page = await self._fetch(self._listing)
        async for item in page:
            yield item
