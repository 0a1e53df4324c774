"""Loss spans found by content in templates as users bring them and as the reasoning families
write them (`tests/unit/contracts/layout_templates.py`). Each mask is checked against one
computed another way: the hand-written text each trained message must train, found in the
rendering, and the tokens that overlap it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.chat import ChatTokenizer, Encoded, ExampleError
from tests.unit.contracts.chat_templates import make_folder
from tests.unit.contracts.layout_templates import BEHAVIOURS, NO_CONTENT

CALL = {"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
CONVERSATION: dict[str, Any] = {"tools": TOOLS, "messages": [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Who founded Veloria?"},
    {"role": "assistant", "content": "Admiral Senna Brightwater."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    {"role": "assistant", "content": [{"type": "text", "text": "It is sunny."}]},
]}  # fmt: skip
REASONING: dict[str, Any] = {"messages": [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "reasoning_content": "Add them.", "content": "4."},
    {"role": "user", "content": "3+3?"},
    {"role": "assistant", "reasoning_content": "Add again.", "content": "6."},
]}  # fmt: skip


@pytest.fixture(scope="module")
def chats(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("layouts")
    templates = {name: b.template for name, b in BEHAVIOURS.items()} | {"no_content": NO_CONTENT}
    folders = {name: make_folder(root, base_model_dir, name, t) for name, t in templates.items()}
    yield {name: ChatTokenizer.from_folder(folder) for name, folder in folders.items()}, folders
    shutil.rmtree(root, ignore_errors=True)


def expected_mask(chat: ChatTokenizer, text: str, answers: list[str]) -> list[bool]:
    """The reference: each answer found in `text` in order, and the tokens that overlap it."""
    spans, at = [], 0
    for answer in answers:
        start = text.index(answer, at)
        spans.append((start, start + len(answer)))
        at = start + len(answer)
    offsets = chat.tokenizer.encode(text, add_special_tokens=False).offsets
    return [any(a < end and start < b for a, b in spans) for start, end in offsets]


def decoded(chat: ChatTokenizer, sequence: Encoded) -> str:
    return chat.tokenizer.decode(sequence.input_ids, skip_special_tokens=False)


def trained_runs(chat: ChatTokenizer, sequence: Encoded) -> list[str]:
    runs: list[list[int]] = []
    previous = False
    for token, trained in zip(sequence.input_ids, sequence.loss_mask, strict=True):
        if trained and not previous:
            runs.append([])
        if trained:
            runs[-1].append(token)
        previous = trained
    return [chat.tokenizer.decode(run, skip_special_tokens=False) for run in runs]


def _check(chat: ChatTokenizer, sequence: Encoded, answers: list[str]) -> None:
    text = chat.tokenizer.decode(sequence.input_ids, skip_special_tokens=False)
    assert sequence.loss_mask == expected_mask(chat, text, answers)
    assert trained_runs(chat, sequence) == answers


@pytest.mark.parametrize("name", ["indented", "spaced"])
def test_pretty_printed_template_trains_the_answers_not_the_whitespace_around_headers(
    chats: Any, name: str
) -> None:
    """The generation prompt is not a prefix of the rendered turn (one more newline, other
    indentation): the answers and their end-of-turn tokens are trained all the same, each
    after its own generation prompt, the text the model continues at inference."""
    chat = chats[0][name]
    messages = CONVERSATION["messages"]
    head = chat.render(messages[:2], TOOLS, add_generation_prompt=True)
    turn = chat.render(messages[:3], TOOLS)
    assert not turn.startswith(head)  # the layout the old check refused
    assert head.endswith("\n\n") and " <|" in turn  # the prompt's extra newline; indentation
    end = "<|eot_id|>" if name == "indented" else "</s>"
    answers = [
        f"Admiral Senna Brightwater.{end}",
        f'<tool_call>{{"name": "get_weather", "arguments": "{{\\"city\\": \\"Paris\\"}}"}}'
        f"</tool_call>{end}",
        f"It is sunny.{end}",
    ]  # fmt: skip
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    sequences = chat.encode(CONVERSATION).sequences
    assert len(sequences) == len(turns) == len(answers)
    for i, sequence, answer in zip(turns, sequences, answers, strict=True):
        _check(chat, sequence, [answer])
        prompt = chat.render(messages[:i], TOOLS, add_generation_prompt=True)
        assert decoded(chat, sequence) == prompt + answer


def test_pretty_printed_template_renders_as_transformers_renders_it(chats: Any) -> None:
    from transformers import AutoTokenizer

    for name in ("indented", "spaced"):
        hf = AutoTokenizer.from_pretrained(chats[1][name])
        expected = hf.apply_chat_template(
            CONVERSATION["messages"], tools=TOOLS, tokenize=False, add_generation_prompt=True
        )
        assert chats[0][name].render(CONVERSATION["messages"], TOOLS, True) == expected


def test_reasoning_dropped_from_history_trains_each_turn_with_its_reasoning(chats: Any) -> None:
    """Qwen-3-shaped: the first answer's reasoning is gone once the second question follows,
    so it is trained in the conversation up to it; the last in the whole conversation."""
    chat = chats[0]["thinking"]
    first, whole = chat.encode(REASONING).sequences
    assert "3+3?" not in decoded(chat, first)
    assert "Add them." not in decoded(chat, whole)
    _check(chat, first, ["<think>\nAdd them.\n</think>\n\n4.<|im_end|>"])
    _check(chat, whole, ["<think>\nAdd again.\n</think>\n\n6.<|im_end|>"])


def test_enable_thinking_off_trains_the_answer_after_the_prompts_empty_block(chats: Any) -> None:
    """`chat_template_kwargs` reach the template as transformers passes extra arguments: with
    `enable_thinking: false` the prompt holds the empty reasoning block and only the answer is
    trained; with thinking on, the empty block is the model's to write and is trained."""
    from transformers import AutoTokenizer

    chat = chats[0]["thinking"]
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."}]
    off = {"messages": messages, "chat_template_kwargs": {"enable_thinking": False}}
    hf = AutoTokenizer.from_pretrained(chats[1]["thinking"])
    prompt = hf.apply_chat_template(
        messages[:1], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert prompt.endswith("<think>\n\n</think>\n\n")
    assert chat.render(messages[:1], None, True, template_kwargs={"enable_thinking": False}) == (
        prompt
    )
    [sequence] = chat.encode(off).sequences
    _check(chat, sequence, ["4.<|im_end|>"])
    [sequence] = chat.encode({"messages": messages}).sequences
    _check(chat, sequence, ["<think>\n\n</think>\n\n4.<|im_end|>"])


def test_generation_prompt_that_opens_think_trains_the_reasoning_after_it(chats: Any) -> None:
    chat = chats[0]["opens_think"]
    assert chat.render(REASONING["messages"][:1], None, True).endswith("<|assistant|><think>\n")
    first, whole = chat.encode(REASONING).sequences
    _check(chat, first, ["Add them.\n</think>\n\n4.</s>"])
    _check(chat, whole, ["Add again.\n</think>\n\n6.</s>"])


def test_template_that_does_not_render_the_content_is_refused_naming_the_message(
    chats: Any,
) -> None:
    with pytest.raises(
        ExampleError, match=r"does not render the content of messages\[1\] \(assistant\)"
    ):
        chats[0]["no_content"].check(REASONING, max_seq_len=1024)


def test_template_that_transforms_the_content_still_trains_it(chats: Any) -> None:
    """A template that trims the content (so the rendering of the marked fields differs):
    the span falls back to what follows the generation prompt, whitespace left out."""
    tokenizer = chats[0]["indented"].tokenizer
    template = BEHAVIOURS["spaced"].template.replace(
        "{{ text + ns.calls", "{{ text | trim + ns.calls"
    )
    chat = ChatTokenizer(tokenizer, template, {})
    example = {"messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  Hello there.  "},
    ]}  # fmt: skip
    [sequence] = chat.encode(example).sequences
    _check(chat, sequence, ["Hello there.</s>"])


def test_template_variables_cannot_replace_the_example(chats: Any) -> None:
    example = {**REASONING, "chat_template_kwargs": {"messages": [], "bos_token": "x"}}
    with pytest.raises(ExampleError, match="chat_template_kwargs cannot set bos_token, messages"):
        chats[0]["thinking"].check(example, max_seq_len=1024)
