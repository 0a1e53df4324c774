"""Executor fixtures: attempts, and the Kubernetes harness over a fake cluster (in-process).
The local executor's harness, which starts processes, is in tests/integration/executors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from service.executors.base import Attempt, AttemptState, Executor
from service.executors.kubernetes import KubernetesExecutor
from service.executors.settings import ExecutorSettings
from tests.unit.executors.fake_kube import FakeCluster


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


@pytest.fixture()
def kube() -> KubeHarness:
    return KubeHarness()
