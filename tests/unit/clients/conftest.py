from __future__ import annotations

import pytest

from clients.sdk._http import AsyncAPI, SyncAPI

from .standin import StandIn


@pytest.fixture()
def standin() -> StandIn:
    return StandIn()


@pytest.fixture()
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds both clients ask to sleep (before a retry, between polls), recorded here
    instead of slept: what the SDK decides, whatever the machine's load."""
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(SyncAPI, "sleep", staticmethod(delays.append))
    monkeypatch.setattr(AsyncAPI, "sleep", staticmethod(record))
    return delays
