"""The executor port: how the scheduler starts, watches and stops one training attempt.

An executor runs `python -m trainer run --spec URL --report URL` somewhere (a local
subprocess, a Kubernetes Job), with the attempt's token in the environment as
`WHETSTONE_ATTEMPT_TOKEN` (never on the command line), and knows nothing of the database.
The scheduler owns retries: an executor never restarts an attempt by itself.

Handles are plain strings the scheduler stores with the attempt. They stay meaningful across a
scheduler restart: a new executor built with the same settings polls and kills the attempts
an earlier one launched, and `running()` lists them so that a restarted scheduler can re-adopt
the ones it knows and reap the ones it does not.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from contracts.messages import EXIT_BAD_INPUT, EXIT_OK


@dataclass(frozen=True)
class Attempt:
    """One try at running one job; `number` counts from 1."""

    job_id: str
    number: int
    spec_url: str
    report_url: str
    token: str
    base_model: str
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    """Variables that are secrets (the W&B API key): in a local trainer's environment; on
    Kubernetes, keys of the attempt's own Secret, never written into the Job object."""
    wandb: bool = False
    """The job logs to W&B: a local trainer keeps the service's `WANDB_*` variables."""

    def trainer_args(self) -> list[str]:
        """The arguments after `python -m trainer`; the token goes in the environment
        (`ATTEMPT_TOKEN_ENV`), never here: a command line is public on the machine."""
        return ["run", "--spec", self.spec_url, "--report", self.report_url]


class Outcome(StrEnum):
    RUNNING = "running"
    """Launched and not finished (includes waiting for a GPU node or an image pull)."""
    SUCCEEDED = "succeeded"
    """The trainer exited 0: finished, or stopped as asked (cancel, pause, SIGTERM)."""
    FAILED = "failed"
    """The trainer exited non-zero or its pod failed; see `exit_code` and `retryable`."""
    LOST = "lost"
    """The attempt is gone without a recorded end: treat as a crash and resume."""


@dataclass(frozen=True)
class AttemptState:
    outcome: Outcome
    exit_code: int | None = None
    """Process exit code; negative is the signal that killed it (as `subprocess` reports)."""
    reason: str = ""
    """A short reason a person can read, e.g. `exit code 1` or `DeadlineExceeded`."""
    retryable: bool = False
    """Whether a new attempt may help: false for bad input (exit code 2)."""

    @property
    def finished(self) -> bool:
        return self.outcome is not Outcome.RUNNING

    @classmethod
    def running(cls) -> AttemptState:
        return cls(Outcome.RUNNING)

    @classmethod
    def lost(cls, reason: str) -> AttemptState:
        return cls(Outcome.LOST, reason=reason, retryable=True)

    @classmethod
    def from_exit_code(cls, code: int, reason: str = "") -> AttemptState:
        """0 succeeded; 2 failed for good (bad spec or data); anything else a retryable crash."""
        if code == EXIT_OK:
            return cls(Outcome.SUCCEEDED, exit_code=code, reason=reason or "exit code 0")
        if code == EXIT_BAD_INPUT:
            return cls(Outcome.FAILED, code, reason or "exit code 2 (bad spec or data)", False)
        return cls(Outcome.FAILED, code, reason or describe_exit(code), True)


@dataclass(frozen=True)
class LiveAttempt:
    """An attempt an executor still runs, as `running()` lists it."""

    handle: str
    job_id: str
    number: int


class ExecutorError(Exception):
    """The executor could not do what was asked (launch refused, backend unreachable)."""


class ExecutorFull(ExecutorError):
    """`launch` was called with every slot taken."""


@runtime_checkable
class Executor(Protocol):
    """What the scheduler needs from a place that runs trainers."""

    @property
    def capacity(self) -> int:
        """How many attempts may run at once through this executor."""
        ...

    def launch(self, attempt: Attempt) -> str:
        """Start the attempt and return its handle; raise `ExecutorError` if it cannot."""
        ...

    def poll(self, handle: str) -> AttemptState:
        """The attempt's state now; an unknown or vanished handle is `lost`."""
        ...

    def kill(self, handle: str) -> None:
        """Stop the attempt (graceful first, forced after a grace period); idempotent."""
        ...

    def running(self) -> list[LiveAttempt]:
        """Attempts still running, including those launched before a scheduler restart."""
        ...


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
