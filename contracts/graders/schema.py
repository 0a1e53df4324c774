"""OpenAI's grader definitions (`GraderStringCheck`, `GraderTextSimilarity`, `GraderPython`,
`GraderScoreModel`, `GraderLabelModel`, `GraderMulti`) as pydantic models, and `check`: what
a grader must satisfy before it runs (templates, formula, source), each failure naming its
field as OpenAI's `param` does (`grader.graders.name.reference`).

Torch-free: the service validates graders with it, the trainer reads a job's grader with it.
"""

from __future__ import annotations

import ast
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.graders import formula, templates
from contracts.graders.errors import GraderError

# OpenAI's limit for a Python grader's source (its RFT guide: "less than 256kB").
MAX_PYTHON_SOURCE_BYTES: Final = 256 * 1024
MAX_TEMPLATE_CHARS: Final = 64 * 1024
MAX_SUB_GRADERS: Final = 16
MAX_LABELS: Final = 64
MAX_MODEL_INPUT_MESSAGES: Final = 64

StringOperation = Literal["eq", "ne", "like", "ilike"]
SimilarityMetric = Literal[
    "cosine",
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StringCheckGrader(_Model):
    type: Literal["string_check"]
    name: str
    input: str = Field(max_length=MAX_TEMPLATE_CHARS)
    reference: str = Field(max_length=MAX_TEMPLATE_CHARS)
    operation: StringOperation


class TextSimilarityGrader(_Model):
    type: Literal["text_similarity"] = "text_similarity"
    name: str
    input: str = Field(max_length=MAX_TEMPLATE_CHARS)
    reference: str = Field(max_length=MAX_TEMPLATE_CHARS)
    evaluation_metric: SimilarityMetric


class PythonGrader(_Model):
    type: Literal["python"]
    name: str
    source: str
    image_tag: str | None = None


class InputText(_Model):
    type: Literal["input_text"]
    text: str = Field(max_length=MAX_TEMPLATE_CHARS)


class OutputText(_Model):
    type: Literal["output_text"]
    text: str = Field(max_length=MAX_TEMPLATE_CHARS)


class InputImage(_Model):
    type: Literal["input_image"]
    image_url: str
    file_id: str | None = None
    detail: str | None = None


class InputAudioData(_Model):
    data: str
    format: str


class InputAudio(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudioData


ContentPart = Annotated[
    InputText | OutputText | InputImage | InputAudio, Field(discriminator="type")
]


class EvalItem(_Model):
    """One message of a model grader's prompt; `content` may hold templates."""

    role: Literal["user", "assistant", "system", "developer"]
    content: str | ContentPart | list[ContentPart]
    type: Literal["message"] | None = None


class SamplingParams(_Model):
    seed: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    max_completions_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: str | None = None


class ScoreModelGrader(_Model):
    type: Literal["score_model"]
    name: str
    model: str
    input: list[EvalItem] = Field(min_length=1, max_length=MAX_MODEL_INPUT_MESSAGES)
    range: list[float] | None = None
    sampling_params: SamplingParams | None = None


class LabelModelGrader(_Model):
    type: Literal["label_model"]
    name: str
    model: str
    input: list[EvalItem] = Field(min_length=1, max_length=MAX_MODEL_INPUT_MESSAGES)
    labels: list[str] = Field(min_length=1, max_length=MAX_LABELS)
    passing_labels: list[str] = Field(min_length=1, max_length=MAX_LABELS)


SubGrader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader,
    Field(discriminator="type"),
]


class MultiGrader(_Model):
    """`graders` is OpenAI's spec's one grader (named in `calculate_output` by its `name`) or,
    as OpenAI's graders guide writes it, an object of graders keyed by the names the formula
    uses."""

    type: Literal["multi"] = "multi"
    name: str
    graders: SubGrader | dict[str, SubGrader]
    calculate_output: str = Field(max_length=formula.MAX_CHARS)

    def named(self) -> dict[str, SubGraderType]:
        if isinstance(self.graders, dict):
            return dict(self.graders)
        return {self.graders.name: self.graders}


SubGraderType = (
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader
)
GraderType = SubGraderType | MultiGrader
# What `grader` of a run, validate or reinforcement job accepts: every type, `multi` included
# (the SDK's and the guide's `label_model` too).
Grader = Annotated[
    StringCheckGrader
    | TextSimilarityGrader
    | PythonGrader
    | ScoreModelGrader
    | LabelModelGrader
    | MultiGrader,
    Field(discriminator="type"),
]
GRADER: TypeAdapter[GraderType] = TypeAdapter(Grader)


def parse(data: object) -> GraderType:
    """A grader from its JSON; pydantic's `ValidationError` when its shape is wrong."""
    return GRADER.validate_python(data)


def check(grader: GraderType, param: str = "grader") -> None:
    """Everything about `grader` that can be known before a sample: raises `GraderError`."""
    match grader:
        case StringCheckGrader() | TextSimilarityGrader():
            templates.check(grader.input, f"{param}.input")
            templates.check(grader.reference, f"{param}.reference")
        case PythonGrader():
            check_python_source(grader.source, f"{param}.source")
        case ScoreModelGrader():
            _check_messages(grader.input, f"{param}.input")
            if grader.range is not None and (
                len(grader.range) != 2 or not grader.range[0] < grader.range[1]
            ):
                raise GraderError(
                    "`range` must be two numbers, the lower first, e.g. [0, 1].",
                    f"{param}.range",
                )
        case LabelModelGrader():
            _check_messages(grader.input, f"{param}.input")
            unknown = [label for label in grader.passing_labels if label not in grader.labels]
            if unknown:
                raise GraderError(
                    f"`passing_labels` must be a subset of `labels`; not in `labels`: {unknown}.",
                    f"{param}.passing_labels",
                )
        case MultiGrader():
            _check_multi(grader, param)


def _check_multi(grader: MultiGrader, param: str) -> None:
    named = grader.named()
    if not named:
        raise GraderError("A multi grader needs at least one grader.", f"{param}.graders")
    if len(named) > MAX_SUB_GRADERS:
        raise GraderError(
            f"A multi grader may combine at most {MAX_SUB_GRADERS} graders.", f"{param}.graders"
        )
    keyed = isinstance(grader.graders, dict)
    for key, sub in named.items():
        check(sub, f"{param}.graders.{key}" if keyed else f"{param}.graders")
    try:
        formula.parse(grader.calculate_output, set(named))
    except formula.FormulaError as e:
        raise GraderError(str(e), f"{param}.calculate_output") from None


def _check_messages(messages: list[EvalItem], param: str) -> None:
    for i, message in enumerate(messages):
        parts = message.content if isinstance(message.content, list) else [message.content]
        for j, part in enumerate(parts):
            where = f"{param}[{i}].content" + (
                f"[{j}]" if isinstance(message.content, list) else ""
            )
            if isinstance(part, str):
                templates.check(part, where)
            elif isinstance(part, InputText | OutputText):
                templates.check(part.text, f"{where}.text")
            else:
                raise GraderError(
                    f"`{part.type}` content is not supported here: model graders take text.",
                    where,
                )


def check_python_source(source: str, param: str) -> None:
    """The source is small enough, parses, and defines `grade` at its top level; it is not
    run here (that happens only in the sandbox)."""
    if len(source.encode()) > MAX_PYTHON_SOURCE_BYTES:
        raise GraderError(
            f"The grader's source must be at most {MAX_PYTHON_SOURCE_BYTES // 1024} KB.", param
        )
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        raise GraderError(f"The grader's source does not parse: {e}.", param) from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "grade":
            return
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "grade" for t in node.targets
        ):
            return
    raise GraderError(
        "The grader's source must define `grade(sample, item) -> float` at its top level.", param
    )
