"""Chat examples -> token ids and a per-token loss mask, with the base model's own template.

Torch-free (only `tokenizers`, `jinja2` and the standard library): the service imports it to
count tokens and to refuse examples before training; the trainer builds its dataset with it.

The template renders as transformers renders it: the same Jinja settings, `tojson`,
`raise_exception` and `strftime_now` (frozen for the length of one example, so every
rendering of it agrees on the date). Loss falls only on what an assistant message adds after
its header: its content, its reasoning and tool calls where the template renders them, and its
end-of-turn token(s); one with `weight: 0` adds none.

Where those spans are:
- A template that marks assistant text with `{% generation %}` (as transformers'
  `return_assistant_tokens_mask` reads it) says so itself: the whole conversation is rendered
  once and the marked spans are the loss, one per assistant message.
- Otherwise each trained assistant message's span is found by its content
  (`contracts.spans`): its content, reasoning and tool calls where the template puts them, the
  model's own opening before them (`<think>` when the generation prompt does not open it) and
  the end-of-turn token(s) after them; never the header, nor whitespace the template writes
  around headers or between turns. No empty conversation is ever rendered (templates read
  `messages[0]`), and a template that adds a default system prompt or folds the system
  message into the first user turn does so in every rendering alike. A template that does not
  render the message's content at all is refused for that example, naming the message.
- A turn is trained where the model sees it at inference: in the rendering of the
  conversation up to it. Where the whole conversation renders it the same way (a prefix-stable
  template), it is trained inside the whole conversation, one sequence per example. A template
  that renders an earlier turn differently once later ones follow (Qwen 3 and DeepSeek-R1
  style templates drop earlier turns' reasoning) gets one more sequence per such trained turn,
  the conversation up to and including it (`EncodedExample.sequences`; the trainer packs them).
  A template whose generation prompt differs from the rendered header by whitespace only (an
  indented template, one more newline after the header) gets one sequence per trained turn,
  the generation prompt followed by the trained text: the tokens the model is given and
  continues at inference, not the rendered history's slightly other ones.
- Reasoning: an assistant message's `reasoning_content` is given to the template (vLLM's field;
  reasoning templates render it inside `<think>...</think>`); where the template renders it,
  it is trained with the answer. An example's `chat_template_kwargs` (as vLLM's request field
  of that name, e.g. `{"enable_thinking": false}`) are passed to the template as variables,
  as transformers passes `apply_chat_template`'s extra arguments.
A template's own refusal (`raise_exception`) or failure is a per-example `ExampleError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from tokenizers import Tokenizer

from contracts import spans
from contracts.spans import MARK_CHARACTERS
from contracts.template import cut_marks, environment, load_template, marks_generation

# Template variables an example's `chat_template_kwargs` cannot set.
RESERVED_VARIABLES = frozenset(
    {"messages", "tools", "add_generation_prompt", "strftime_now", "raise_exception"}
)


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
class EncodedExample:
    """One example's training sequences: the whole conversation, and for a template that is
    not prefix-stable one more per trained turn it renders differently there."""

    sequences: tuple[Encoded, ...]

    def __len__(self) -> int:
        return sum(len(s) for s in self.sequences)

    @property
    def trained_tokens(self) -> int:
        return sum(s.trained_tokens for s in self.sequences)

    @property
    def longest(self) -> int:
        return max((len(s) for s in self.sequences), default=0)


@dataclass(frozen=True)
class SpecialTokenHit:
    """A special-token string written literally inside an example's text."""

    token: str
    where: str  # e.g. "messages[1].content"
    offset: int  # character offset inside that field

    def __str__(self) -> str:
        return f"special token {self.token!r} in {self.where} at character {self.offset}"


def _raise_exception(message: str) -> None:
    raise ExampleError(f"the chat template refused the example: {message}")


class ChatTokenizer:
    """A model folder's tokenizer (`tokenizer.json`) and chat template."""

    def __init__(self, tokenizer: Tokenizer, template: str, special: dict[str, str]) -> None:
        self.tokenizer = tokenizer
        env = environment(_raise_exception)
        try:
            self.template = env.from_string(template)
        except TemplateError as e:
            raise ValueError(f"the chat template does not compile: {e}") from e
        self.marks_generation = marks_generation(env, template)
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
        return cls(tokenizer, load_template(folder), special)

    # --- rendering --------------------------------------------------------------------

    def render(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        now: datetime | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """The template's text, as transformers' `apply_chat_template` renders it
        (`template_kwargs` as its extra keyword arguments)."""
        raw = self._render(messages, tools, add_generation_prompt, now, template_kwargs)
        text, _spans = cut_marks(raw)
        return text

    def _render(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        add_generation_prompt: bool,
        now: datetime | None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """The raw rendering, generation marks included; the template's errors are the
        example's."""
        moment = now or datetime.now()
        extra = dict(template_kwargs or {})
        reserved = RESERVED_VARIABLES.union(self.special).intersection(extra)
        if reserved:
            raise ExampleError(
                f"chat_template_kwargs cannot set {', '.join(sorted(reserved))}: the template "
                "gets it from the example or the tokenizer"
            )
        try:
            return self.template.render(
                **extra,
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

    def _texts(self, example: dict[str, Any]) -> list[tuple[str, list[tuple[int, int]]]]:
        """The example's sequences: each text and its character spans that carry loss."""
        messages = example["messages"]
        for where, text in _text_fields(example):
            if any(mark in text for mark in MARK_CHARACTERS):
                raise ExampleError(f"{where} holds a Unicode noncharacter (U+FDD0 to U+FDD5)")
        render = _Renderer(self, example.get("tools"), example.get("chat_template_kwargs"))
        whole, marked_spans = cut_marks(render.raw(messages, False))
        assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        trained = [i for i in assistants if messages[i].get("weight", 1) != 0]
        if self.marks_generation:
            return [(whole, self._marked_spans(marked_spans, assistants, trained))]
        stable: list[tuple[int, int]] = []
        own: list[tuple[str, list[tuple[int, int]]]] = []
        for i in trained:
            head, turn, (start, end) = render.turn(messages, i)
            if not turn.startswith(head) and spans.same_but_whitespace(head, turn):
                # The prompt differs from the rendered header by whitespace only (an indented
                # template, one more newline): the answer is trained after the prompt itself,
                # the text the model continues at inference.
                own.append((head + turn[start:end], [(len(head), len(head) + end - start)]))
            elif whole[:end] == turn[:end]:
                stable.append((start, end))  # the whole conversation shows it as inference does
            else:
                own.append((turn, [(start, end)]))
        return own + ([(whole, stable)] if stable or not own else [])

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

    def encode(self, example: dict[str, Any]) -> EncodedExample:
        """Token ids of each of the example's sequences and its loss mask: a token carries
        loss when any of its characters is inside a span (as transformers'
        `return_assistant_tokens_mask` marks tokens)."""
        sequences = []
        for text, loss in self._texts(example):
            encoding = self.tokenizer.encode(text, add_special_tokens=False)
            sequences.append(Encoded(list(encoding.ids), _loss_mask(encoding.offsets, loss)))
        return EncodedExample(tuple(sequences))

    def count_tokens(self, example: dict[str, Any]) -> int:
        """Tokens of the whole conversation as rendered (one render, no spans): the length of
        its one sequence for a prefix-stable template (`encode` gives every sequence)."""
        text = self.render(
            example["messages"], example.get("tools"),
            template_kwargs=example.get("chat_template_kwargs"),
        )  # fmt: skip
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

    def check(self, example: dict[str, Any], max_seq_len: int) -> EncodedExample:
        """Encode one example for training or refuse it with the reason."""
        hits = self.special_token_hits(example)
        if hits:
            raise ExampleError(f"{hits[0]}: special tokens are not allowed in message text")
        encoded = self.encode(example)
        if encoded.longest > max_seq_len:
            what = (
                f"example is {encoded.longest} tokens long"
                if len(encoded.sequences) == 1
                else f"example renders a sequence of {encoded.longest} tokens (one of "
                f"{len(encoded.sequences)}: the chat template is not prefix-stable, so each "
                "trained assistant turn is trained in the conversation up to it)"
            )
            raise ExampleError(
                f"{what}, over the model's limit of {max_seq_len}; shorten it or split it"
            )
        if encoded.trained_tokens == 0:
            raise ExampleError("no assistant tokens to train on")
        return encoded


class _Renderer:
    """One example's renderings: its tools, template variables and one moment for all."""

    def __init__(
        self, chat: ChatTokenizer, tools: Any, template_kwargs: dict[str, Any] | None
    ) -> None:
        self.chat, self.tools, self.kwargs = chat, tools, template_kwargs
        self.now = datetime.now()

    def raw(self, messages: Sequence[dict[str, Any]], generation_prompt: bool) -> str:
        return self.chat._render(messages, self.tools, generation_prompt, self.now, self.kwargs)

    def text(self, messages: Sequence[dict[str, Any]], generation_prompt: bool = False) -> str:
        return cut_marks(self.raw(messages, generation_prompt))[0]

    def turn(self, messages: list[dict[str, Any]], i: int) -> tuple[str, str, tuple[int, int]]:
        """The conversation before assistant message `i` with the generation prompt, the
        conversation up to it, and the span of the latter that trains it."""
        head = self.text(messages[:i], generation_prompt=True)
        turn = self.text(messages[: i + 1])
        return head, turn, spans.answer_span(head, turn, self._fields(messages, i, turn))

    def _fields(self, messages: list[dict[str, Any]], i: int, turn: str) -> tuple[int, int] | None:
        """Where message `i`'s fields are in `turn`; `None` when the template transforms
        them (then only that it renders the content at all is checked)."""
        try:
            found = spans.cut_fields(self.text([*messages[:i], spans.marked(messages[i])]))
        except ExampleError:
            found = None
        if found is None or found.text != turn:
            if spans.has_content(messages[i]) and self._ignores_content(messages, i):
                raise _not_rendered(i)
            return None
        if spans.has_content(messages[i]) and not found.content:
            raise _not_rendered(i)
        return found.bounds

    def _ignores_content(self, messages: list[dict[str, Any]], i: int) -> bool:
        one, other = (
            self.text([*messages[:i], spans.with_content(messages[i], text)])
            for text in ("\ufdd2", "\ufdd3")
        )
        return one == other


def _not_rendered(i: int) -> ExampleError:
    return ExampleError(
        f"the chat template does not render the content of messages[{i}] (assistant), so it "
        "cannot be trained; give that message weight 0, or use a base model whose chat "
        "template renders assistant messages"
    )


def _loss_mask(offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Per token (character offsets), whether it has a character inside one of `spans`
    (sorted, apart)."""
    mask = []
    k = 0
    for start, end in offsets:
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        mask.append(k < len(spans) and spans[k][0] < max(end, start + 1))
    return mask


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
        if isinstance(message.get("reasoning_content"), str):
            fields.append((f"messages[{i}].reasoning_content", message["reasoning_content"]))
        for j, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            for key in ("name", "arguments"):
                if isinstance(function.get(key), str):
                    fields.append((f"messages[{i}].tool_calls[{j}].function.{key}", function[key]))
    if example.get("tools"):
        fields.append(("tools", json.dumps(example["tools"], ensure_ascii=False)))
    return fields
