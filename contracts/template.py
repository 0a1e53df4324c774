"""The chat template's Jinja environment, as transformers sets it up, and what it marks.

The same Jinja settings as transformers' `apply_chat_template` (`trim_blocks`,
`lstrip_blocks`, loop controls, a sandbox), its `tojson`, and `{% generation %}` blocks, whose
output is wrapped in two Unicode noncharacters while rendering, then cut out with their places
kept. `raise_exception` and `strftime_now` are given by the caller. Torch-free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

# `{% generation %}` output is wrapped in these two Unicode noncharacters (never part of
# interchanged text) while rendering, then they are cut out and their places kept.
GENERATION_START = "\ufdd0"
GENERATION_END = "\ufdd1"
_GENERATION_MARKS = re.compile("[\ufdd0\ufdd1]")


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


class GenerationMarks(Extension):
    """`{% generation %}...{% endgeneration %}`: assistant text as the template marks it."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_mark")
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _mark(self, caller: Callable[[], str]) -> str:
        return GENERATION_START + caller() + GENERATION_END


def environment(raise_exception: Callable[[str], None]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, GenerationMarks]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def cut_marks(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without generation marks, and the character spans they enclosed."""
    if GENERATION_START not in text and GENERATION_END not in text:
        return text, []
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    at = length = 0
    start: int | None = None
    for match in _GENERATION_MARKS.finditer(text):
        out.append(text[at : match.start()])
        length += match.start() - at
        at = match.end()
        if match.group() == GENERATION_START:
            start = length
        else:
            if start is not None and length > start:
                spans.append((start, length))
            start = None
    out.append(text[at:])
    return "".join(out), spans


def marks_generation(env: ImmutableSandboxedEnvironment, template: str) -> bool:
    """Whether the template has a `{% generation %}` block."""
    for block in env.parse(template).find_all(nodes.CallBlock):
        target = block.call.node
        if isinstance(target, nodes.ExtensionAttribute) and target.name == "_mark":
            return True
    return False


def load_template(folder: Path) -> str:
    """A model folder's chat template: `chat_template.jinja`, else `tokenizer_config.json`'s."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        named = {t["name"]: t["template"] for t in template}
        template = named.get("default") or next(iter(named.values()), None)
    if not isinstance(template, str):
        raise ValueError(f"{folder}: the tokenizer has no chat template")
    return template
