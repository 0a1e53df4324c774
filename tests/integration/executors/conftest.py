"""The local executor's harness (a stand-in trainer as a real process), and the contract
suite's harness: one per executor, so the contract suite runs against each."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.executors.local import LocalExecutor
from tests.unit.executors.conftest import Harness, KubeHarness, wait_finished

STANDIN = Path(__file__).with_name("standin_trainer.py")


@dataclass
class LocalHarness:
    root: Path
    slots: int = 2
    name: str = "local"
    executor: LocalExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = self.restart()

    def restart(self) -> LocalExecutor:
        return LocalExecutor(
            self.root,
            slots=self.slots,
            command=[sys.executable, str(STANDIN)],
            kill_grace_seconds=1.0,
        )


@pytest.fixture(params=["local", "kubernetes"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made: Harness = LocalHarness(tmp_path) if request.param == "local" else KubeHarness()
    yield made
    for live in made.executor.running():
        made.executor.kill(live.handle)
        wait_finished(made.executor, live.handle, timeout=5)


@pytest.fixture()
def local(tmp_path: Path) -> Iterator[LocalHarness]:
    made = LocalHarness(tmp_path)
    yield made
    for live in made.executor.running():
        made.executor.kill(live.handle)
        wait_finished(made.executor, live.handle, timeout=5)
