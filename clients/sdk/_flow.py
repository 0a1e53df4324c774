"""Operations of more than one request, written once for both clients as generators.

A flow yields steps: a `Call` (the transport sends it and sends back what its `read` gave,
or throws in the exception it raised), a `Pause` (the transport sleeps). A feed may also
yield `Emit(item)`: the item goes to whoever iterates the feed. `jobs.wait` is a flow,
`jobs.follow` a feed; the sync client drives them with `time.sleep`, the async one with
`asyncio.sleep`, and neither knows what they do.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._core import Call

T = TypeVar("T")
Y = TypeVar("Y")


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Emit(Generic[T]):
    item: T


Step = Call[Any] | Pause
Flow = Generator[Step, Any, T]
"""Steps out, each step's result in, the operation's result at the end."""
Feed = Generator[Step | Emit[T], Any, None]
"""A flow whose results are the items it emits along the way."""
Plan = Call[T] | Flow[T]
"""What an operation is: one call, or a flow of them."""


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Outcome:
    """What the last step gave back to the flow: a value, or the exception it raised."""

    value: Any = None
    error: Exception | None = None


def resume(flow: Generator[Y, Any, T], last: Outcome) -> Y | Done[T]:
    """The flow's next step after `last`, or `Done` with its result once it returns."""
    try:
        return flow.send(last.value) if last.error is None else flow.throw(last.error)
    except StopIteration as stop:
        return Done(stop.value)
