"""Grade one model sample against one dataset item: `grade(grader, model_sample, item, ctx)`.

What went wrong is reported, never raised: a `Grade` carries OpenAI's error flags
(`metadata.errors` of `RunGraderResponse`) with a reward of 0, so a trainer can score a
failed sample 0 and go on, and the run endpoint can answer 200 with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.graders import formula, model_graders, sandbox, similarity, templates
from contracts.graders.errors import GraderError
from contracts.graders.schema import (
    GraderType,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)


@dataclass
class Context:
    """What graders may use on this deployment."""

    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    # Python graders running at once in this process (each may use `limits.memory_bytes`);
    # None: no cap. One waiting past its wall-clock limit is a `python_grader_server_error`.
    python_slots: threading.BoundedSemaphore | None = None
    complete: model_graders.Complete | None = None  # model graders' chat completions
    embed: similarity.Embed | None = None  # `cosine`


@dataclass
class Errors:
    """OpenAI's `metadata.errors`, every flag present."""

    formula_parse_error: bool = False
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False
    invalid_variable_error: bool = False
    other_error: bool = False
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    model_grader_server_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_server_error_details: str | None = None

    def any(self) -> bool:
        return any(v is True for v in asdict(self).values())

    def merge(self, other: Errors) -> None:
        for key, value in asdict(other).items():
            if value not in (False, None) and getattr(self, key) in (False, None):
                setattr(self, key, value)


@dataclass
class Grade:
    """One grading: OpenAI's `RunGraderResponse` fields (`to_openai`)."""

    name: str
    type: str
    reward: float = 0.0
    errors: Errors = field(default_factory=Errors)
    execution_time: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)
    sub_rewards: dict[str, float] = field(default_factory=dict)
    usage_per_model: dict[str, dict[str, int]] = field(default_factory=dict)
    sampled_model_name: str | None = None
    details: dict[str, str] = field(default_factory=dict)  # the Python grader's stdout/stderr

    def add_usage(self, model: str, usage: dict[str, int]) -> None:
        total = self.usage_per_model.setdefault(model, {})
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value

    def to_openai(self) -> dict[str, Any]:
        tokens = sum(u.get("total_tokens", 0) for u in self.usage_per_model.values())
        return {
            "reward": self.reward,
            "metadata": {
                "name": self.name,
                "type": self.type,
                "errors": asdict(self.errors),
                "execution_time": self.execution_time,
                "scores": self.scores,
                "token_usage": tokens if self.usage_per_model else None,
                "sampled_model_name": self.sampled_model_name,
            },
            "sub_rewards": self.sub_rewards,
            "model_grader_token_usage_per_model": self.usage_per_model,
        }


def grade(grader: GraderType, model_sample: str, item: Any, ctx: Context) -> Grade:
    started = time.monotonic()
    sample = templates.Sample.from_text(model_sample)
    result = Grade(name=grader.name, type=grader.type)
    try:
        _dispatch(grader, sample, item, ctx, result)
    except templates.MissingVariable as e:
        result.errors.invalid_variable_error = True
        result.details["error"] = str(e.args[0])
    except templates.SampleNotJson as e:
        result.errors.sample_parse_error = True
        result.details["error"] = str(e)
    if result.errors.any():
        result.reward = 0.0
    result.execution_time = time.monotonic() - started
    return result


def _dispatch(
    grader: GraderType, sample: templates.Sample, item: Any, ctx: Context, result: Grade
) -> None:
    match grader:
        case StringCheckGrader():
            result.reward = _string_check(grader, sample, item)
        case TextSimilarityGrader():
            text = templates.render(grader.input, sample, item)
            reference = templates.render(grader.reference, sample, item)
            try:
                result.reward = similarity.score(
                    grader.evaluation_metric, text, reference, ctx.embed
                )
            except similarity.SimilarityUnavailable as e:
                result.errors.other_error = True
                result.details["error"] = str(e)
        case PythonGrader():
            _python(grader, sample, item, ctx, result)
        case ScoreModelGrader() | LabelModelGrader():
            _model(grader, sample, item, ctx, result)
        case MultiGrader():
            _multi(grader, sample, item, ctx, result)


def _string_check(grader: StringCheckGrader, sample: templates.Sample, item: Any) -> float:
    text = templates.render(grader.input, sample, item)
    reference = templates.render(grader.reference, sample, item)
    match grader.operation:
        case "eq":
            passed = text == reference
        case "ne":
            passed = text != reference
        case "like":
            passed = reference in text
        case "ilike":
            passed = reference.lower() in text.lower()
    return 1.0 if passed else 0.0


def _python(
    grader: PythonGrader, sample: templates.Sample, item: Any, ctx: Context, result: Grade
) -> None:
    slots = ctx.python_slots
    if slots is not None and not slots.acquire(timeout=ctx.limits.wall_seconds):
        result.errors.python_grader_server_error = True
        result.errors.python_grader_server_error_type = "busy"
        result.details["error"] = "Every Python grader slot of this server stayed busy."
        return
    try:
        # A run without an item gives `grade` an empty dict, as a dataset line would.
        outcome = sandbox.run(grader.source, sample.namespace(), item or {}, ctx.limits)
    finally:
        if slots is not None:
            slots.release()
    result.details = {"stdout": outcome.stdout, "stderr": outcome.stderr}
    if outcome.reward is not None:
        result.reward = outcome.reward
        return
    if outcome.kind == "server":
        result.errors.python_grader_server_error = True
        result.errors.python_grader_server_error_type = "sandbox_unavailable"
        result.details["error"] = outcome.error or ""
        return
    result.errors.python_grader_runtime_error = True
    result.errors.python_grader_runtime_error_details = outcome.error
    if outcome.kind == "timeout":
        result.errors.unresponsive_reward_error = True


def _model(
    grader: ScoreModelGrader | LabelModelGrader,
    sample: templates.Sample,
    item: Any,
    ctx: Context,
    result: Grade,
) -> None:
    body = model_graders.request(grader, sample, item)
    if ctx.complete is None:
        result.errors.model_grader_server_error = True
        result.errors.model_grader_server_error_details = "No grading model is reachable here."
        return
    try:
        answer = model_graders.read(grader, ctx.complete(grader.model, body))
    except model_graders.ModelCallError as e:
        result.errors.model_grader_server_error = True
        result.errors.model_grader_server_error_details = str(e)[:2000]
        return
    result.sampled_model_name = answer.sampled_model_name or grader.model
    result.add_usage(result.sampled_model_name, answer.usage)
    result.errors.model_grader_refusal_error = answer.refusal
    result.errors.model_grader_parse_error = answer.parse_error
    if isinstance(grader, ScoreModelGrader) and isinstance(answer.value, float):
        low, high = grader.range or (0.0, 1.0)
        result.reward = min(max(answer.value, low), high)
        result.scores = {"result": answer.value}
    elif isinstance(grader, LabelModelGrader) and isinstance(answer.value, str):
        result.reward = 1.0 if answer.value in grader.passing_labels else 0.0
        result.scores = {"label": answer.value}


def _multi(
    grader: MultiGrader, sample: templates.Sample, item: Any, ctx: Context, result: Grade
) -> None:
    for key, sub in grader.named().items():
        # `grade` renders each grader's own templates; a failure there is that grader's.
        sub_grade = grade(sub, sample.output_text, item, ctx)
        result.sub_rewards[key] = sub_grade.reward
        result.errors.merge(sub_grade.errors)
        for model, usage in sub_grade.usage_per_model.items():
            result.add_usage(model, usage)
        result.sampled_model_name = result.sampled_model_name or sub_grade.sampled_model_name
    result.scores = dict(result.sub_rewards)
    if result.errors.any():
        return
    try:
        result.reward = formula.evaluate(grader.calculate_output, result.sub_rewards)
    except formula.FormulaError as e:
        result.errors.other_error = True
        result.details["error"] = str(e)


def check_available(
    grader: GraderType, ctx: Context, serves: Callable[[str], bool], param: str = "grader"
) -> None:
    """What this deployment cannot do for `grader` (beyond `schema.check`): `cosine` without an
    embedding model, a model grader whose model it does not serve (`serves(model)` false)."""
    match grader:
        case TextSimilarityGrader(evaluation_metric="cosine") if ctx.embed is None:
            raise GraderError(
                "The `cosine` metric needs an embedding model, and none is configured on this "
                "server (WHETSTONE_GRADER_EMBEDDING_MODEL).",
                f"{param}.evaluation_metric",
            )
        case ScoreModelGrader() | LabelModelGrader():
            if ctx.complete is None or not serves(grader.model):
                raise GraderError(
                    f"The model `{grader.model}` is not served here: a grading model must be "
                    "a base or fine-tuned model of this server, or one of the grading "
                    "endpoint's (WHETSTONE_GRADER_MODELS).",
                    f"{param}.model",
                )
        case MultiGrader():
            keyed = isinstance(grader.graders, dict)
            for key, sub in grader.named().items():
                where = f"{param}.graders.{key}" if keyed else f"{param}.graders"
                check_available(sub, ctx, serves, where)
