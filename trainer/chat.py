"""Chat examples -> token ids and a per-token loss mask, with the base model's own template.

Torch-free (only `tokenizers`, `jinja2` and the standard library): the service imports it to
count tokens and to refuse examples before training; the trainer builds its dataset with it.

The template renders exactly as transformers renders it (the same Jinja settings and the
same `tojson`). Loss falls only on what an assistant message adds after its header: its
content, its tool calls and its end token; an assistant message with `weight: 0` adds none.
Those spans are found by rendering the conversation one message at a time and taking the
differences, so any prefix-stable template works, not just Whetstone's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


class ExampleError(ValueError):
    """One example cannot be trained on; `line` counts from 1 when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason if line is None else f"line {line}: {reason}")

    def at_line(self, line: int) -> ExampleError:
        return ExampleError(self.reason, line)


@dataclass(frozen=True)
class Encoded:
    """One rendered example: token ids and, per token, whether the loss counts it."""

    input_ids: list[int]
    loss_mask: list[bool]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


@dataclass(frozen=True)
class SpecialTokenHit:
    """A special-token string written literally inside an example's text."""

    token: str
    where: str  # e.g. "messages[1].content"
    offset: int  # character offset inside that field

    def __str__(self) -> str:
        return f"special token {self.token!r} in {self.where} at character {self.offset}"


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


def _raise_exception(message: str) -> None:
    raise ExampleError(f"the chat template refused the example: {message}")


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    return env


def _load_template(folder: Path) -> str:
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


class ChatTokenizer:
    """A model folder's tokenizer (`tokenizer.json`) and chat template."""

    def __init__(self, tokenizer: Tokenizer, template: str, special: dict[str, str]) -> None:
        self.tokenizer = tokenizer
        self.template = _environment().from_string(template)
        self.special = special  # bos_token, eos_token, pad_token ... as the template sees them
        self.special_tokens = sorted(
            (t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special),
            key=len,
            reverse=True,
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> ChatTokenizer:
        folder = Path(folder)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        special = {
            k: _token_text(config[k])
            for k in ("bos_token", "eos_token", "pad_token", "unk_token")
            if config.get(k) is not None
        }
        return cls(tokenizer, _load_template(folder), special)

    # --- rendering --------------------------------------------------------------------

    def render(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        return self.template.render(
            messages=list(messages),
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            **self.special,
        )

    def _spans(self, example: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
        """The whole text and the character spans that carry loss."""
        messages = example["messages"]
        tools = example.get("tools")
        spans: list[tuple[int, int]] = []
        previous = self.render([], tools)
        for i, message in enumerate(messages):
            text = self.render(messages[: i + 1], tools)
            if message.get("role") == "assistant":
                head = self.render(messages[:i], tools, add_generation_prompt=True)
                if not (head.startswith(previous) and text.startswith(head)):
                    raise ExampleError("the chat template does not render messages[:i] as a prefix")
                if message.get("weight", 1) != 0 and len(text) > len(head):
                    spans.append((len(head), len(text)))
            elif not text.startswith(previous):
                raise ExampleError("the chat template does not render messages[:i] as a prefix")
            previous = text
        return previous, spans

    def encode(self, example: dict[str, Any]) -> Encoded:
        """Token ids of the rendered example and its loss mask."""
        text, spans = self._spans(example)
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        mask = []
        span_index = 0
        for start, _end in encoding.offsets:
            while span_index < len(spans) and start >= spans[span_index][1]:
                span_index += 1
            inside = span_index < len(spans) and spans[span_index][0] <= start
            mask.append(inside)
        return Encoded(list(encoding.ids), mask)

    def count_tokens(self, example: dict[str, Any]) -> int:
        text = self.render(example["messages"], example.get("tools"))
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def special_token_hits(self, example: dict[str, Any]) -> list[SpecialTokenHit]:
        """Special-token strings written literally in the example's text fields."""
        hits = []
        for where, text in _text_fields(example):
            for token in self.special_tokens:
                offset = text.find(token)
                if offset >= 0:
                    hits.append(SpecialTokenHit(token, where, offset))
        return hits

    def check(self, example: dict[str, Any], max_seq_len: int) -> Encoded:
        """Encode one example for training or refuse it with the reason."""
        hits = self.special_token_hits(example)
        if hits:
            raise ExampleError(f"{hits[0]}: special tokens are not allowed in message text")
        encoded = self.encode(example)
        if len(encoded) > max_seq_len:
            raise ExampleError(
                f"example is {len(encoded)} tokens long, over the model's limit of "
                f"{max_seq_len}; shorten it or split it"
            )
        if encoded.trained_tokens == 0:
            raise ExampleError("no assistant tokens to train on")
        return encoded


def _token_text(value: Any) -> str:
    return str(value["content"]) if isinstance(value, dict) else str(value)


def _text_fields(example: dict[str, Any]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for i, message in enumerate(example.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str):
            fields.append((f"messages[{i}].content", content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    fields.append((f"messages[{i}].content[{j}].text", part["text"]))
        for j, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            for key in ("name", "arguments"):
                if isinstance(function.get(key), str):
                    fields.append((f"messages[{i}].tool_calls[{j}].function.{key}", function[key]))
    if example.get("tools"):
        fields.append(("tools", json.dumps(example["tools"], ensure_ascii=False)))
    return fields
