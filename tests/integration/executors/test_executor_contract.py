"""The executor contract: what the scheduler relies on, checked against every executor.

`local` runs real processes (a stand-in trainer script); `kubernetes` runs the real client
against an in-memory API server (no cluster can run here; see `fake_kube.py`).
"""

from __future__ import annotations

import pytest

from service.executors.base import Executor, ExecutorError, ExecutorFull, Outcome
from tests.unit.executors.conftest import Harness, make_attempt, wait_finished


def test_is_an_executor_with_capacity(harness: Harness) -> None:
    assert isinstance(harness.executor, Executor)
    assert harness.executor.capacity == 2


def test_exit_zero_succeeds(harness: Harness) -> None:
    handle = harness.executor.launch(make_attempt(exit_code=0))
    state = wait_finished(harness.executor, handle)
    assert state.outcome is Outcome.SUCCEEDED
    assert state.exit_code == 0


def test_exit_two_fails_for_good(harness: Harness) -> None:
    handle = harness.executor.launch(make_attempt(exit_code=2))
    state = wait_finished(harness.executor, handle)
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, 2, False)


def test_crash_fails_and_may_be_retried(harness: Harness) -> None:
    handle = harness.executor.launch(make_attempt(exit_code=3))
    state = wait_finished(harness.executor, handle)
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, 3, True)
    assert "3" in state.reason


def test_running_attempt_is_listed_until_killed(harness: Harness) -> None:
    ex = harness.executor
    handle = ex.launch(make_attempt("ftjob-run", 1, sleep=60))
    assert ex.poll(handle).outcome is Outcome.RUNNING
    assert [(a.handle, a.job_id, a.number) for a in ex.running()] == [(handle, "ftjob-run", 1)]
    ex.kill(handle)
    state = wait_finished(ex, handle)
    assert state.finished, "a killed attempt must stop"
    assert ex.running() == []
    ex.kill(handle)  # idempotent


def test_attempts_of_one_job_have_distinct_handles(harness: Harness) -> None:
    first = harness.executor.launch(make_attempt("ftjob-same", 1, exit_code=3))
    second = harness.executor.launch(make_attempt("ftjob-same", 2, exit_code=0))
    assert first != second
    assert wait_finished(harness.executor, first).outcome is Outcome.FAILED
    assert wait_finished(harness.executor, second).outcome is Outcome.SUCCEEDED


def test_the_same_attempt_cannot_run_twice(harness: Harness) -> None:
    handle = harness.executor.launch(make_attempt("ftjob-twice", 1, sleep=60))
    with pytest.raises(ExecutorError):
        harness.executor.launch(make_attempt("ftjob-twice", 1, sleep=60))
    assert [a.handle for a in harness.executor.running()] == [handle]


def test_launch_beyond_capacity_is_refused(harness: Harness) -> None:
    ex = harness.executor
    ex.launch(make_attempt("ftjob-a", sleep=60))
    ex.launch(make_attempt("ftjob-b", sleep=60))
    with pytest.raises(ExecutorFull):
        ex.launch(make_attempt("ftjob-c", sleep=60))


def test_restarted_executor_adopts_and_kills_running_attempts(harness: Harness) -> None:
    handle = harness.executor.launch(make_attempt("ftjob-adopt", 2, sleep=60))
    fresh = harness.restart()
    assert [(a.handle, a.job_id, a.number) for a in fresh.running()] == [(handle, "ftjob-adopt", 2)]
    assert fresh.poll(handle).outcome is Outcome.RUNNING
    fresh.kill(handle)
    assert wait_finished(fresh, handle).finished
    assert fresh.running() == []


def test_unknown_handles_are_lost(harness: Harness) -> None:
    assert harness.executor.poll("nonsense").outcome is Outcome.LOST
    other = (
        "k8s:whetstone/wst-nothing-1-00000000"
        if harness.name == "kubernetes"
        else ("local:ftjob-nothing:1:999999999:1")
    )
    assert harness.executor.poll(other).outcome is Outcome.LOST
    harness.executor.kill(other)  # nothing to kill: no error
