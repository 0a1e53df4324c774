"""Executor fixtures: one harness per executor, so the contract suite runs against each."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from service.executors.base import Attempt, AttemptState, Executor
from service.executors.kubernetes import KubernetesExecutor
from service.executors.local import LocalExecutor
from service.executors.settings import ExecutorSettings
from tests.unit.executors.fake_kube import FakeCluster

STANDIN = Path(__file__).with_name("standin_trainer.py")


def make_attempt(
    job_id: str = "ftjob-AbC123",
    number: int = 1,
    *,
    exit_code: int = 0,
    sleep: float = 0.0,
    **env: str,
) -> Attempt:
    return Attempt(
        job_id=job_id,
        number=number,
        spec_url=f"file:///data/objects/jobs/{job_id}/spec.json",
        report_url=f"http://127.0.0.1:8000/internal/v1/jobs/{job_id}/report",
        token=f"tok-{job_id}-{number}",
        base_model="whetstone-tiny",
        env={"STANDIN_EXIT": str(exit_code), "STANDIN_SLEEP": str(sleep), **env},
    )


def wait_finished(executor: Executor, handle: str, timeout: float = 15.0) -> AttemptState:
    deadline = time.monotonic() + timeout
    while True:
        state = executor.poll(handle)
        if state.finished or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


class Harness(Protocol):
    name: str
    executor: Executor

    def restart(self) -> Executor:
        """A new executor over the same backend, as after a scheduler restart."""
        ...


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


@dataclass
class KubeHarness:
    slots: int = 2
    name: str = "kubernetes"
    cluster: FakeCluster = field(default_factory=FakeCluster)
    settings: ExecutorSettings = field(init=False)
    executor: KubernetesExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.settings = ExecutorSettings(
            executor="kubernetes",
            trainer_slots=self.slots,
            k8s_namespace="whetstone",
            k8s_node_selector={"nvidia.com/gpu.present": "true"},
            k8s_tolerations=[
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        )
        self.executor = self.restart()

    def restart(self) -> KubernetesExecutor:
        batch, core = self.cluster.apis()
        return KubernetesExecutor(self.settings, batch, core, clock=self.cluster.clock)


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


@pytest.fixture()
def kube() -> KubeHarness:
    return KubeHarness()
