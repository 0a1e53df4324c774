"""Chat examples -> token ids and a per-token loss mask, with the base model's own template.

Torch-free (only `tokenizers`, `jinja2` and the standard library): the service imports it to
count tokens and to refuse examples before training; the trainer builds its dataset with it.

The template renders as transformers renders it: the same Jinja settings, `tojson`,
`raise_exception` and `strftime_now` (frozen for the length of one example, so every
rendering of it agrees on the date). Loss falls only on what an assistant message adds after
its header: its content, its tool calls and its end token; one with `weight: 0` adds none.

Where those spans are:
- A template that marks assistant text with `{% generation %}` (as transformers'
  `return_assistant_tokens_mask` reads it) says so itself: the whole conversation is rendered
  once and the marked spans are the loss, one per assistant message.
- Otherwise, for each trained assistant message `i`, the conversation before it is rendered
  with the generation prompt (`head`) and the conversation up to it without (`turn`); the
  span is what `turn` adds to `head`. No empty conversation is ever rendered (templates
  read `messages[0]`), and a template that adds a default system prompt or folds the system
  message into the first user turn does so in every rendering alike. The whole rendering
  must start with each `turn`; a template that renders an earlier turn differently once
  later ones follow (one that drops earlier turns' reasoning) is refused for that example,
  naming the message, unless that earlier turn has `weight: 0`.
A template's own refusal (`raise_exception`) or failure is a per-example `ExampleError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

# `{% generation %}` output is wrapped in these two Unicode noncharacters (never part of
# interchanged text) while rendering, then they are cut out and their places kept.
GENERATION_START = "\ufdd0"
GENERATION_END = "\ufdd1"


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


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, GenerationMarks]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _cut_marks(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without generation marks, and the character spans they enclosed."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    start: int | None = None
    for piece in _split_marks(text):
        if piece == GENERATION_START:
            start = length
        elif piece == GENERATION_END:
            if start is not None and length > start:
                spans.append((start, length))
            start = None
        else:
            out.append(piece)
            length += len(piece)
    return "".join(out), spans


def _split_marks(text: str) -> list[str]:
    pieces: list[str] = []
    at = 0
    for i, ch in enumerate(text):
        if ch in (GENERATION_START, GENERATION_END):
            pieces.extend((text[at:i], ch))
            at = i + 1
    pieces.append(text[at:])
    return [p for p in pieces if p]


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
        env = _environment()
        try:
            self.template = env.from_string(template)
        except TemplateError as e:
            raise ValueError(f"the chat template does not compile: {e}") from e
        self.marks_generation = _marks_generation(env, template)
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
        now: datetime | None = None,
    ) -> str:
        """The template's text, as transformers' `apply_chat_template` renders it."""
        text, _spans = _cut_marks(self._render(messages, tools, add_generation_prompt, now))
        return text

    def _render(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        add_generation_prompt: bool,
        now: datetime | None,
    ) -> str:
        """The raw rendering, generation marks included; the template's errors are the
        example's."""
        moment = now or datetime.now()
        try:
            return self.template.render(
                messages=list(messages),
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                strftime_now=moment.strftime,
                **self.special,
            )
        except ExampleError:
            raise
        except Exception as e:  # noqa: BLE001 - a template can raise anything at all
            raise ExampleError(
                f"the chat template failed on the example: {type(e).__name__}: {e}"
            ) from e

    def _spans(self, example: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
        """The whole text and the character spans that carry loss."""
        messages = example["messages"]
        tools = example.get("tools")
        now = datetime.now()
        for where, text in _text_fields(example):
            if GENERATION_START in text or GENERATION_END in text:
                raise ExampleError(f"{where} holds a Unicode noncharacter (U+FDD0 or U+FDD1)")
        whole, marked = _cut_marks(self._render(messages, tools, False, now))
        assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        trained = [i for i in assistants if messages[i].get("weight", 1) != 0]
        if self.marks_generation:
            return whole, self._marked_spans(marked, assistants, trained)
        spans: list[tuple[int, int]] = []
        for i in trained:
            head = self.render(messages[:i], tools, add_generation_prompt=True, now=now)
            turn = self.render(messages[: i + 1], tools, now=now)
            if not turn.startswith(head):
                raise ExampleError(
                    f"the chat template renders messages[{i}] (assistant) with a header other "
                    "than its generation prompt, so the answer's tokens cannot be told apart"
                )
            if not whole.startswith(turn):
                raise ExampleError(
                    f"the chat template renders messages[{i}] (assistant) differently once "
                    "later messages follow it (it is not prefix-stable: e.g. it drops earlier "
                    "turns' reasoning); give that message weight 0, or split the conversation "
                    "into one example per assistant turn"
                )
            if len(turn) > len(head):
                spans.append((len(head), len(turn)))
        return whole, spans

    @staticmethod
    def _marked_spans(
        marked: list[tuple[int, int]], assistants: list[int], trained: list[int]
    ) -> list[tuple[int, int]]:
        """The `{% generation %}` spans of the trained assistant messages."""
        if len(trained) == len(assistants):
            return marked
        if len(marked) != len(assistants):
            raise ExampleError(
                f"the chat template marks {len(marked)} generation spans for "
                f"{len(assistants)} assistant messages, so weight 0 cannot be applied"
            )
        return [span for span, i in zip(marked, assistants, strict=True) if i in trained]

    def encode(self, example: dict[str, Any]) -> Encoded:
        """Token ids of the rendered example and its loss mask: a token carries loss when
        it starts inside a span."""
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


def _marks_generation(env: ImmutableSandboxedEnvironment, template: str) -> bool:
    """Whether the template has a `{% generation %}` block."""
    for block in env.parse(template).find_all(nodes.CallBlock):
        target = block.call.node
        if isinstance(target, nodes.ExtensionAttribute) and target.name == "_mark":
            return True
    return False


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
