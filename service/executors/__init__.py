"""Executors: where trainer attempts run (`local` subprocesses or `kubernetes` Jobs).

The port is in `base`; `build_executor(settings, data_dir)` picks the adapter.
"""

from __future__ import annotations

from pathlib import Path

from service.executors.base import (
    Attempt,
    AttemptState,
    Executor,
    ExecutorError,
    ExecutorFull,
    LiveAttempt,
    Outcome,
)
from service.executors.settings import ExecutorSettings, Toleration

__all__ = [
    "Attempt",
    "AttemptState",
    "Executor",
    "ExecutorError",
    "ExecutorFull",
    "ExecutorSettings",
    "LiveAttempt",
    "Outcome",
    "Toleration",
    "build_executor",
]


def build_executor(settings: ExecutorSettings, data_dir: Path) -> Executor:
    """The executor the settings name; `data_dir` holds the local executor's logs."""
    if settings.executor == "kubernetes":
        from service.executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor.from_settings(settings)
    from service.executors.local import LocalExecutor
    from service.gpus import parse_gpu_list

    return LocalExecutor(
        data_dir,
        slots=settings.trainer_slots,
        command=settings.trainer_command,
        kill_grace_seconds=settings.trainer_kill_grace_seconds,
        gpus=parse_gpu_list(settings.trainer_gpus),
    )
