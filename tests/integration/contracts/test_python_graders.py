"""Python graders run through `grade`: each runs in a sandbox process (the sandbox itself is
tests/integration/contracts/test_grader_sandbox.py's)."""

from __future__ import annotations

import threading

from contracts.graders.run import Context
from contracts.graders.sandbox import Limits
from tests.unit.contracts.test_graders import _grade


def test_python_graders_wait_for_a_slot_and_say_when_none_came() -> None:
    slots = threading.BoundedSemaphore(1)
    ctx = Context(limits=Limits(wall_seconds=0.1), python_slots=slots)
    source = {"type": "python", "name": "p", "source": "def grade(s, i):\n    return 1.0\n"}
    with slots:  # another grader holds the only slot
        busy = _grade(source, "x", None, ctx)
    assert busy.reward == 0.0 and busy.errors.python_grader_server_error
    assert busy.errors.python_grader_server_error_type == "busy"
    ctx = Context(limits=Limits(wall_seconds=30), python_slots=slots)
    assert _grade(source, "x", None, ctx).reward == 1.0  # the slot came back


def test_a_python_grader_without_an_item_gets_an_empty_dict() -> None:
    source = "def grade(sample, item):\n    return float(len(item)) + (item.get('x') is None)\n"
    assert _grade({"type": "python", "name": "p", "source": source}, "x").reward == 1.0
