"""The trainer beats as often as the service that launched it asks
(`WHETSTONE_TRAINER_HEARTBEAT_SECONDS`, a quarter of the service's lease), so a slow step
never costs the attempt its lease; without it, every 30 s."""

from __future__ import annotations

from typing import Any

import pytest

import trainer.entry
from trainer.progress import HEARTBEAT_SECONDS, Progress


def _heartbeat_of_run(monkeypatch: pytest.MonkeyPatch) -> float:
    seen: list[Progress] = []

    def run(spec_url: str, progress: Progress, endpoint_url: Any) -> int:
        seen.append(progress)
        return 0

    monkeypatch.setattr(trainer.entry, "_run", run)
    assert trainer.entry.run_command("file:///nowhere/spec.json") == 0
    return seen[0].heartbeat_seconds


def test_the_services_heartbeat_interval_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(trainer.entry.HEARTBEAT_ENV, "2")
    assert _heartbeat_of_run(monkeypatch) == 2.0


def test_without_it_the_trainer_beats_every_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(trainer.entry.HEARTBEAT_ENV, raising=False)
    assert _heartbeat_of_run(monkeypatch) == HEARTBEAT_SECONDS == 30.0
