"""Grader templates: `{{ namespace.variable }}` substituted with a sample's or an item's value.

OpenAI's graders guide: the namespaces are `item` (the dataset line) and `sample` (the model's
answer: `output_text`, `output_json` when the answer is JSON, `output_tools`), nested values
reached with a dotted, JSON-path-like name (`{{ item.reference.answer }}`, `{{ item.tags[0] }}`).
Nothing else is evaluated: no expressions, filters or calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from contracts.graders.errors import GraderError

SAMPLE_VARIABLES: Final = ("output_text", "output_json", "output_tools")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class MissingVariable(KeyError):
    """A template names a value that this sample or item does not have."""


class SampleNotJson(ValueError):
    """A template reads `sample.output_json` but the sample is not JSON."""


@dataclass(frozen=True)
class Sample:
    """The `sample` namespace of one model answer."""

    output_text: str
    output_json: Any = None
    is_json: bool = False
    output_tools: tuple[Any, ...] = ()

    @classmethod
    def from_text(cls, text: str) -> Sample:
        try:
            value = json.loads(text)
        except ValueError:
            return cls(output_text=text)
        return cls(output_text=text, output_json=value, is_json=True)

    def namespace(self) -> dict[str, Any]:
        return {
            "output_text": self.output_text,
            "output_json": self.output_json,
            "output_tools": list(self.output_tools),
        }


def _path(expression: str, where: str) -> tuple[str, list[str | int]]:
    """`item.a.b[0]` -> ("item", ["a", "b", 0]); `GraderError` naming `where` otherwise."""
    text = expression.strip()
    head = _NAME.match(text)
    steps: list[str | int] = []
    position = head.end() if head else 0
    while head and position < len(text):
        step = _STEP.match(text, position)
        if step is None:
            break
        steps.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
        position = step.end()
    if head is None or position != len(text) or not steps:
        raise GraderError(
            f"Invalid template variable `{{{{{expression}}}}}`: write "
            "`{{item.field}}` or `{{sample.output_text}}`.",
            where,
        )
    namespace = head.group(0)
    if namespace not in ("item", "sample"):
        raise GraderError(
            f"Unknown template namespace `{namespace}` in `{{{{{expression}}}}}`: "
            "the namespaces are `item` and `sample`.",
            where,
        )
    if namespace == "sample" and steps[0] not in SAMPLE_VARIABLES:
        raise GraderError(
            f"Unknown template variable `{{{{{expression}}}}}`: the sample has "
            + ", ".join(f"`sample.{v}`" for v in SAMPLE_VARIABLES)
            + ".",
            where,
        )
    if namespace == "sample" and steps[0] == "output_text" and len(steps) > 1:
        raise GraderError(
            f"`sample.output_text` is a string: `{{{{{expression}}}}}` reads into it.", where
        )
    return namespace, steps


def check(template: str, where: str) -> None:
    """Every `{{ }}` of `template` names a known namespace and variable; braces balance."""
    for match in _TAG.finditer(template):
        _path(match.group(1), where)
    rest = _TAG.sub("", template)
    if "{{" in rest:
        raise GraderError("A template has `{{` without its closing `}}`.", where)


def variables(template: str) -> list[tuple[str, list[str | int]]]:
    return [_path(m.group(1), "template") for m in _TAG.finditer(template)]


def lookup(namespace: str, steps: list[str | int], sample: Sample, item: Any) -> Any:
    if namespace == "sample" and steps[0] == "output_json" and not sample.is_json:
        raise SampleNotJson("The sample is not valid JSON, so `sample.output_json` is empty.")
    value: Any = sample.namespace() if namespace == "sample" else item
    for step in steps:
        if isinstance(step, int):
            ok = isinstance(value, list) and -len(value) <= step < len(value)
        else:
            ok = isinstance(value, dict) and step in value
        if not ok:
            shown = namespace + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
            raise MissingVariable(f"`{shown}` is not in the {namespace}.")
        value = value[step]
    return value


def render(template: str, sample: Sample, item: Any) -> str:
    """`template` with each variable replaced: strings as they are, other values as JSON."""

    def value(match: re.Match[str]) -> str:
        namespace, steps = _path(match.group(1), "template")
        found = lookup(namespace, steps, sample, item)
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return _TAG.sub(value, template)
