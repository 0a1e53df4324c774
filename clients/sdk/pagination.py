"""Cursor pages: iterate a page and the next pages are fetched for you (`after` = last id).

`SyncPage` is what a sync `list` returns. An async `list` returns an `AsyncPaginator`: await
it for the first `AsyncPage`, or `async for` over it for every item of every page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

Params = dict[str, Any]


def _next_cursor(body: dict[str, Any]) -> str | None:
    """The `after` of the next page, or None when this is the last page."""
    data = body.get("data") or []
    if not body.get("has_more") or not data:
        return None
    last = body.get("last_id") or data[-1].get("id")
    return str(last) if last else None


class SyncPage(Generic[M]):
    """One page of a list; iterating it yields the items of this page and all later ones."""

    def __init__(
        self,
        body: dict[str, Any],
        model: type[M],
        params: Params,
        fetch: Callable[[Params], SyncPage[M]],
    ) -> None:
        self.data: list[M] = [model.model_validate(item) for item in body.get("data") or []]
        self.has_more: bool = bool(body.get("has_more", False))
        self._cursor = _next_cursor(body)
        self._params = params
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self._cursor is not None

    def next_page(self) -> SyncPage[M]:
        if self._cursor is None:
            raise StopIteration("no more pages")
        return self._fetch({**self._params, "after": self._cursor})

    def iter_pages(self) -> Iterator[SyncPage[M]]:
        page = self
        yield page
        while page.has_next_page():
            page = page.next_page()
            yield page

    def __iter__(self) -> Iterator[M]:
        for page in self.iter_pages():
            yield from page.data


class AsyncPage(Generic[M]):
    """One page of an async list; `async for` yields this page's items and all later ones."""

    def __init__(
        self,
        body: dict[str, Any],
        model: type[M],
        params: Params,
        fetch: Callable[[Params], Awaitable[AsyncPage[M]]],
    ) -> None:
        self.data: list[M] = [model.model_validate(item) for item in body.get("data") or []]
        self.has_more: bool = bool(body.get("has_more", False))
        self._cursor = _next_cursor(body)
        self._params = params
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self._cursor is not None

    async def next_page(self) -> AsyncPage[M]:
        if self._cursor is None:
            raise StopAsyncIteration("no more pages")
        return await self._fetch({**self._params, "after": self._cursor})

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

    def __init__(self, fetch: Callable[[Params], Awaitable[AsyncPage[M]]], params: Params) -> None:
        self._fetch = fetch
        self._params = params

    def __await__(self) -> Generator[Any, None, AsyncPage[M]]:
        return self._fetch(self._params).__await__()

    async def __aiter__(self) -> AsyncIterator[M]:
        page = await self._fetch(self._params)
        async for item in page:
            yield item
