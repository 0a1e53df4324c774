"""Resources written once for both clients.

A resource class is generic over its transport: `Models(SyncAPI)` is `Whetstone().models`,
`Models(AsyncAPI)` is `AsyncWhetstone().models`. Its methods only describe what to do; one of
three decorators makes each what the user calls, by the transport of the resource:

- `@endpoint`: the method returns a `Call` or a flow (`_flow`); sync, the call gives its
  result; async, it is a coroutine function giving it.
- `@listing`: the method returns a `Listing`; sync, the call gives the first `SyncPage`;
  async, an `AsyncPaginator`.
- `@feed`: the method is a feed (a generator emitting items); sync, the call gives an
  iterator of the items; async, an async iterator.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from pydantic import BaseModel

from ._flow import Feed, Plan
from ._http import AsyncAPI, SyncAPI
from .pagination import AsyncPaginator, Listing, SyncPage

A = TypeVar("A", bound=SyncAPI | AsyncAPI)
P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Resource(Generic[A]):
    def __init__(self, api: A) -> None:
        self._api = api


class _Method(Generic[P, T]):
    """A resource method's description, `describe(resource, *args, **kwargs) -> T`."""

    def __init__(self, describe: Callable[Concatenate[Any, P], T]) -> None:
        self._describe = describe
        signature = inspect.signature(describe)
        self._signature = signature.replace(
            parameters=list(signature.parameters.values())[1:],
            return_annotation=inspect.Signature.empty,
        )

    def _bind(self, resource: Resource[Any]) -> Callable[P, T]:
        return functools.partial(self._describe, resource)

    def _named(self, bound: Callable[..., Any]) -> Any:
        """`bound` with the name, docstring and parameters of the method it stands for."""
        functools.update_wrapper(bound, self._describe)
        del bound.__wrapped__  # type: ignore[attr-defined]
        bound.__signature__ = self._signature  # type: ignore[attr-defined]
        return bound


class _Endpoint(_Method[P, Plan[T]]):
    @overload
    def __get__(self, resource: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self, resource: Resource[SyncAPI], owner: type[Any] | None = None
    ) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, resource: Resource[AsyncAPI], owner: type[Any] | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, resource: Resource[Any] | None, owner: type[Any] | None = None) -> Any:
        if resource is None:
            return self
        describe, api = self._bind(resource), resource._api
        if isinstance(api, AsyncAPI):
            return self._named(_awaiting(api, describe))
        return self._named(lambda *args, **kwargs: api.run(describe(*args, **kwargs)))


def _awaiting(api: AsyncAPI, describe: Callable[P, Plan[T]]) -> Callable[P, Any]:
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await api.run(describe(*args, **kwargs))

    return run


class _Listing(_Method[P, Listing[M]]):
    @overload
    def __get__(self, resource: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self, resource: Resource[SyncAPI], owner: type[Any] | None = None
    ) -> Callable[P, SyncPage[M]]: ...
    @overload
    def __get__(
        self, resource: Resource[AsyncAPI], owner: type[Any] | None = None
    ) -> Callable[P, AsyncPaginator[M]]: ...
    def __get__(self, resource: Resource[Any] | None, owner: type[Any] | None = None) -> Any:
        if resource is None:
            return self
        describe, api = self._bind(resource), resource._api
        return self._named(lambda *args, **kwargs: api.page(describe(*args, **kwargs)))


class _Feed(_Method[P, Feed[T]]):
    @overload
    def __get__(self, resource: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self, resource: Resource[SyncAPI], owner: type[Any] | None = None
    ) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self, resource: Resource[AsyncAPI], owner: type[Any] | None = None
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, resource: Resource[Any] | None, owner: type[Any] | None = None) -> Any:
        if resource is None:
            return self
        describe, api = self._bind(resource), resource._api
        return self._named(lambda *args, **kwargs: api.feed(describe(*args, **kwargs)))


def endpoint(describe: Callable[Concatenate[Any, P], Plan[T]]) -> _Endpoint[P, T]:
    return _Endpoint(describe)


def listing(describe: Callable[Concatenate[Any, P], Listing[M]]) -> _Listing[P, M]:
    return _Listing(describe)


def feed(describe: Callable[Concatenate[Any, P], Feed[T]]) -> _Feed[P, T]:
    return _Feed(describe)
