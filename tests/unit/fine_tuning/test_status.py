"""The job state machine's table: what it allows, and that everything else is refused."""

from __future__ import annotations

import itertools

import pytest

from service.fine_tuning.status import (
    FINAL_STATUSES,
    TRANSITIONS,
    InvalidTransition,
    JobStatus,
    can_transition,
    check_transition,
)

S = JobStatus
ALLOWED = set(TRANSITIONS)
DISALLOWED = [p for p in itertools.product(JobStatus, JobStatus) if p not in ALLOWED]


def test_the_documented_lifecycle_is_allowed() -> None:
    path = [
        S.VALIDATING_FILES,
        S.QUEUED,
        S.RUNNING,
        S.PAUSING,
        S.PAUSED,
        S.QUEUED,
        S.RUNNING,
        S.SUCCEEDED,
    ]
    for current, target in itertools.pairwise(path):
        assert can_transition(current, target), (current, target)
    assert can_transition(S.RUNNING, S.QUEUED)  # a retryable attempt ended: queued again


@pytest.mark.parametrize("status", [s for s in JobStatus if s not in FINAL_STATUSES])
def test_cancel_and_fail_from_every_status_that_is_not_final(status: JobStatus) -> None:
    assert check_transition("ftjob-x", status, S.CANCELLED) == "Fine-tuning job cancelled"
    assert can_transition(status, S.FAILED)


@pytest.mark.parametrize(("current", "target"), DISALLOWED, ids=lambda s: s.value)
def test_every_other_transition_raises(current: JobStatus, target: JobStatus) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition("ftjob-x", current, target)
    assert info.value.status_code == 400
    assert current.value in info.value.message and target.value in info.value.message


def test_final_statuses_have_no_way_out() -> None:
    assert FINAL_STATUSES == {S.SUCCEEDED, S.FAILED, S.CANCELLED}
    assert not [pair for pair in ALLOWED if pair[0] in FINAL_STATUSES]
    assert all(s.is_final == (s in FINAL_STATUSES) for s in JobStatus)


def test_openai_event_messages_on_transitions() -> None:
    assert (
        TRANSITIONS[S.VALIDATING_FILES, S.QUEUED] == "Files validated, moving job to queued state"
    )
    assert TRANSITIONS[S.QUEUED, S.RUNNING] == "Fine-tuning job started"
    assert TRANSITIONS[S.RUNNING, S.SUCCEEDED] == "The job has successfully completed"
