"""`score_model` and `label_model`: the chat request a grader's prompt becomes, and its answer
read back. The transport is the caller's (`Complete`): the service relays to the vLLM of a
model it serves or to an operator's OpenAI-compatible endpoint; a trainer may call vLLM.

The grading model is asked for JSON through `response_format` (OpenAI's structured outputs,
which vLLM honours): `{"result": <number>}` for a score, `{"label": <one of labels>}` for a
label. An answer that is not such JSON is read leniently (the first number; the label said
alone); failing that it is a `model_grader_parse_error` and a reward of 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contracts.graders import templates
from contracts.graders.schema import (
    EvalItem,
    InputText,
    LabelModelGrader,
    OutputText,
    ScoreModelGrader,
)

Complete = Callable[[str, dict[str, Any]], dict[str, Any]]
"""(model, chat completion request body) -> the chat completion's JSON; raises
`ModelCallError` when the model cannot answer."""

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class ModelCallError(RuntimeError):
    """The grading model did not answer (down, refused the request, timed out)."""


@dataclass
class ModelAnswer:
    """What one grading model's answer says: `value` (the score, or the label) or `error`."""

    value: float | str | None = None
    parse_error: bool = False
    refusal: bool = False
    sampled_model_name: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    text: str = ""


def _text(content: Any, sample: templates.Sample, item: Any) -> str:
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(templates.render(part, sample, item))
        elif isinstance(part, InputText | OutputText):
            texts.append(templates.render(part.text, sample, item))
    return "\n\n".join(texts)


def messages(items: list[EvalItem], sample: templates.Sample, item: Any) -> list[dict[str, str]]:
    """The grader's prompt, templates rendered; `MissingVariable`/`SampleNotJson` propagate."""
    return [
        {
            "role": "system" if m.role == "developer" else m.role,
            "content": _text(m.content, sample, item),
        }
        for m in items
    ]


def request(
    grader: ScoreModelGrader | LabelModelGrader, sample: templates.Sample, item: Any
) -> dict[str, Any]:
    """The chat completion request body for `grader` on this sample and item."""
    if isinstance(grader, ScoreModelGrader):
        schema: dict[str, Any] = {"result": {"type": "number"}}
        name = "score"
    else:
        schema = {"label": {"type": "string", "enum": list(grader.labels)}}
        name = "label"
    body: dict[str, Any] = {
        "model": grader.model,
        "messages": messages(grader.input, sample, item),
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": name,
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": schema,
                    "required": list(schema),
                    "additionalProperties": False,
                },
            },
        },
    }
    params = grader.sampling_params if isinstance(grader, ScoreModelGrader) else None
    if params is not None:
        for key in ("seed", "top_p", "temperature", "reasoning_effort"):
            if (value := getattr(params, key)) is not None:
                body[key] = value
        if params.max_completions_tokens is not None:
            body["max_completion_tokens"] = params.max_completions_tokens
    return body


def _usage(answer: dict[str, Any]) -> dict[str, int]:
    usage = answer.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
        "cached_tokens": int(details.get("cached_tokens") or 0),
    }


def read(grader: ScoreModelGrader | LabelModelGrader, answer: dict[str, Any]) -> ModelAnswer:
    """The score or label in a chat completion's JSON."""
    result = ModelAnswer(sampled_model_name=answer.get("model"), usage=_usage(answer))
    try:
        message = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        result.parse_error = True
        return result
    if message.get("refusal"):
        result.refusal = True
        return result
    text = message.get("content") or ""
    result.text = text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(grader, ScoreModelGrader):
        value = data.get("result") if isinstance(data, dict) else data
        if isinstance(value, int | float) and not isinstance(value, bool):
            result.value = float(value)
        elif (found := _NUMBER.search(text)) is not None:
            result.value = float(found.group(0))
        else:
            result.parse_error = True
        return result
    label = data.get("label") if isinstance(data, dict) else text.strip().strip("\"'.")
    if isinstance(label, str) and label in grader.labels:
        result.value = label
    else:
        result.parse_error = True
    return result
