"""The JobSpec's `grader_limits` are the sandbox's own `Limits`: one definition, its bounds
checked wherever the limits are made, in the JobSpec as a validation error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.graders.sandbox import Limits
from contracts.spec import JobSpec

SPEC = {"job_id": "ftjob-1", "base_model": {"name": "whetstone-tiny", "path": "/m"},
        "training_file": "file:///t.jsonl", "output": "file:///out/"}  # fmt: skip


def test_the_spec_carries_the_sandbox_limits_as_json_and_reads_them_back() -> None:
    limits = Limits(wall_seconds=5, memory_bytes=256 << 20)
    written = JobSpec.model_validate({**SPEC, "grader_limits": limits}).model_dump_json()
    assert json.loads(written)["grader_limits"] == {
        "wall_seconds": 5.0, "cpu_seconds": 20, "memory_bytes": 256 << 20,
        "work_bytes": 64 << 20, "file_bytes": 64 << 20, "output_bytes": 1 << 20,
    }  # fmt: skip
    read = JobSpec.model_validate_json(written).grader_limits
    assert isinstance(read, Limits) and read == limits
    assert JobSpec.model_validate(SPEC).grader_limits == Limits()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"wall_seconds": 0}, "wall_seconds must be greater than 0"),
        ({"cpu_seconds": 0}, "cpu_seconds must be at least 1"),
        ({"output_bytes": -1}, "output_bytes must be at least 1"),
        ({"cpu_seconds": 1.5}, "valid integer"),
        ({"wall_second": 5}, "Unexpected keyword argument"),
    ],
)
def test_limits_out_of_bounds_are_a_validation_error_of_the_spec(
    limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        JobSpec.model_validate({**SPEC, "grader_limits": limits})
    assert info.value.errors()[0]["loc"][0] == "grader_limits"


def test_the_sandbox_refuses_the_same_bounds_without_pydantic() -> None:
    with pytest.raises(ValueError, match="memory_bytes must be at least 1"):
        Limits(memory_bytes=0)
