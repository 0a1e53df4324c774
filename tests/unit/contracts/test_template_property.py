"""Property: for random conversations (a system message or not, tools, weight 0, several
turns, reasoning) through every test template, the trained tokens of all the example's
sequences decode to exactly the trained messages' contents (with their reasoning and tool
calls where the template renders them) plus their end-of-turn tokens; a prefix-stable
template makes one sequence per example, and one whose generation prompt differs from the
rendered header makes one per trained turn, each the prompt followed by the trained text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.chat import ChatTokenizer
from tests.unit.contracts.chat_templates import TEMPLATES, make_folder, plain
from tests.unit.contracts.layout_templates import BEHAVIOURS, Behaviour, calls, text
from tests.unit.contracts.test_template_layouts import decoded, trained_runs


def _think(m: dict[str, Any]) -> str:
    reasoning = m.get("reasoning_content")
    return f"<think>{reasoning}</think>" if reasoning else ""


EOT = "<|eot_id|>"
# The templates of tests/unit/contracts/chat_templates.py, with what each trains.
EARLIER = {
    "reads_first": Behaviour(TEMPLATES["reads_first"], lambda m, _: text(m) + calls(m) + EOT),
    "dated": Behaviour(TEMPLATES["dated"], lambda m, _: text(m) + calls(m) + EOT),
    "default_system": Behaviour(
        TEMPLATES["default_system"], lambda m, _: text(m) + calls(m) + "<|im_end|>"
    ),
    "alternating": Behaviour(
        TEMPLATES["alternating"], lambda m, _: f" {text(m)}</s>", tools=False, alternating=True
    ),
    "refuses_system": Behaviour(
        TEMPLATES["refuses_system"], lambda m, _: text(m) + "<end_of_turn>", system=False
    ),
    "folds_system": Behaviour(TEMPLATES["folds_system"], lambda m, _: text(m) + "<end_of_turn>"),
    "drops_reasoning": Behaviour(
        TEMPLATES["drops_reasoning"], lambda m, _: _think(m) + text(m) + "<|im_end|>",
        reasoning=True,
    ),
}  # fmt: skip
ALL = EARLIER | BEHAVIOURS

WORDS = st.sampled_from(["river", "stone", "Blue", "answer", "Quillhaven", "42", "silver", "é"])
TEXT = st.lists(WORDS, min_size=1, max_size=5).map(lambda w: " ".join(w) + ".")


@st.composite
def assistant(draw: st.DrawFn, b: Behaviour, tools: bool) -> list[dict[str, Any]]:
    """One assistant turn: an answer, or a tool call, its result and the answer."""
    messages: list[dict[str, Any]] = []
    if tools and draw(st.booleans()):
        name = draw(st.sampled_from(["get_weather", "lookup"]))
        call = {"id": "c1", "type": "function",
                "function": {"name": name, "arguments": f'{{"q": "{draw(TEXT)}"}}'}}  # fmt: skip
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": draw(TEXT)},
        ]
    content: Any = draw(TEXT)
    if draw(st.booleans()):
        content = [{"type": "text", "text": content}]
    messages.append({"role": "assistant", "content": content})
    for m in messages:
        if m["role"] == "assistant":
            if b.reasoning and (b.needs_reasoning or draw(st.booleans())):
                m["reasoning_content"] = draw(TEXT)
            if draw(st.integers(0, 3)) == 0:
                m["weight"] = 0
    return messages


@st.composite
def conversation(draw: st.DrawFn, b: Behaviour) -> tuple[dict[str, Any], bool]:
    tools = b.tools and not b.alternating and draw(st.booleans())
    messages: list[dict[str, Any]] = []
    if b.system and draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(TEXT)})
        messages += draw(assistant(b, tools))
    if all(m.get("weight", 1) == 0 for m in messages if m["role"] == "assistant"):
        messages[-1].pop("weight")
    example: dict[str, Any] = {"messages": messages}
    if tools:
        example["tools"] = [{"type": "function", "function": {"name": "get_weather"}}]
    thinking = True
    if b.thinking_switch and draw(st.booleans()):
        thinking = False
        example["chat_template_kwargs"] = {"enable_thinking": False}
        for m in messages:
            m.pop("reasoning_content", None)
    return example, thinking


@pytest.fixture(scope="module")
def chats(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("property")
    yield {
        name: ChatTokenizer.from_folder(make_folder(root, base_model_dir, name, plain(b.template)))
        for name, b in ALL.items()
    }
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(ALL))
def test_trained_tokens_are_exactly_the_answers_and_their_end_tokens(
    chats: dict[str, ChatTokenizer], name: str
) -> None:
    behaviour, chat = ALL[name], chats[name]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(conversation(behaviour))
    def check(drawn: tuple[dict[str, Any], bool]) -> None:
        example, thinking = drawn
        encoded = chat.check(example, max_seq_len=4096)
        runs = [run for s in encoded.sequences for run in trained_runs(chat, s)]
        trained = [
            m for m in example["messages"] if m["role"] == "assistant" and m.get("weight", 1)
        ]
        assert sorted(runs) == sorted(behaviour.answer(m, thinking) for m in trained)
        if behaviour.prompt_differs:  # each turn after its own generation prompt
            messages, tools = example["messages"], example.get("tools")
            at = [i for i, m in enumerate(messages) if m in trained]
            assert len(encoded.sequences) == len(at)
            for i, sequence in zip(at, encoded.sequences, strict=True):
                prompt = chat.render(messages[:i], tools, add_generation_prompt=True)
                assert decoded(chat, sequence) == prompt + behaviour.answer(messages[i], thinking)
        elif not behaviour.reasoning:
            assert len(encoded.sequences) == 1

    check()
