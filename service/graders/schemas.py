"""`/v1/fine_tuning/alpha/graders`: OpenAI's `RunGraderRequest`/`Response` and
`ValidateGraderRequest`/`Response`. The graders are `contracts.graders.schema`'s."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.graders.schema import Grader, GraderType


class RunGraderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: Grader = Field(description="The grader to run.")
    model_sample: str = Field(
        description="The model sample to grade: the `sample` namespace (`output_text`, and "
        "`output_json` when it is valid JSON)."
    )
    item: Any = Field(default=None, description="The dataset item: the `item` namespace.")


class ValidateGraderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: Grader = Field(description="The grader to validate.")


class ValidateGraderResponse(BaseModel):
    grader: GraderType


class RunGraderErrors(BaseModel):
    formula_parse_error: bool
    sample_parse_error: bool
    truncated_observation_error: bool
    unresponsive_reward_error: bool
    invalid_variable_error: bool
    other_error: bool
    python_grader_server_error: bool
    python_grader_server_error_type: str | None
    python_grader_runtime_error: bool
    python_grader_runtime_error_details: str | None
    model_grader_server_error: bool
    model_grader_refusal_error: bool
    model_grader_parse_error: bool
    model_grader_server_error_details: str | None


class RunGraderMetadata(BaseModel):
    name: str
    type: str
    errors: RunGraderErrors
    execution_time: float
    scores: dict[str, Any]
    token_usage: int | None = Field(description="Tokens the grading models used, in all.")
    sampled_model_name: str | None
    details: dict[str, str] = Field(
        default_factory=dict,
        description="Whetstone's extension: a Python grader's `stdout` and `stderr` (the first "
        "8 KiB of each), and `error`, the reason for a flag that has no details field.",
    )


class RunGraderResponse(BaseModel):
    reward: float
    metadata: RunGraderMetadata
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]
