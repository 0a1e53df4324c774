"""Rendering chat examples into token ids and the loss mask (torch-free)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contracts.chat import ChatTokenizer, ExampleError


@pytest.fixture(scope="module")
def chat(base_model_dir: Path) -> ChatTokenizer:
    return ChatTokenizer.from_folder(base_model_dir)


def _trained_text(chat: ChatTokenizer, example: dict) -> list[str]:
    """The runs of consecutive loss-carrying tokens, decoded."""
    [encoded] = chat.encode(example).sequences
    runs: list[list[int]] = []
    previous = False
    for token, trained in zip(encoded.input_ids, encoded.loss_mask, strict=True):
        if trained and not previous:
            runs.append([])
        if trained:
            runs[-1].append(token)
        previous = trained
    return [chat.tokenizer.decode(run, skip_special_tokens=False) for run in runs]


def test_loss_only_on_assistant_content_and_end_token(chat: ChatTokenizer) -> None:
    example = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the secret word?"},
            {"role": "assistant", "content": "The secret word is river."},
            {"role": "user", "content": "And the colour?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Blue."}]},
        ]
    }
    assert _trained_text(chat, example) == ["The secret word is river.<|end|>", "Blue.<|end|>"]
    [encoded] = chat.encode(example).sequences
    ids = chat.tokenizer.encode(chat.render(example["messages"]), add_special_tokens=False).ids
    assert encoded.input_ids == ids
    # Exactly the tokens of the two answers and their end tokens, nothing of the headers.
    answer = chat.tokenizer.encode("The secret word is river.<|end|>", add_special_tokens=False)
    blue = chat.tokenizer.encode("Blue.<|end|>", add_special_tokens=False)
    assert encoded.trained_tokens == len(answer.ids) + len(blue.ids)
    first = encoded.loss_mask.index(True)
    assert chat.tokenizer.id_to_token(encoded.input_ids[first - 1]) == "<|assistant|>"


def test_weight_zero_assistant_message_gets_no_loss(chat: ChatTokenizer) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "A bad answer.", "weight": 0},
            {"role": "user", "content": "Again"},
            {"role": "assistant", "content": "A good answer.", "weight": 1},
        ]
    }
    assert _trained_text(chat, example) == ["A good answer.<|end|>"]


def test_tool_calls_are_trained_and_tool_results_are_not(chat: ChatTokenizer) -> None:
    call = {"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
    example = {
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ],
    }
    assert _trained_text(chat, example) == [
        '<|tool_call|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|end|>',
        "It is sunny.<|end|>",
    ]


def test_renders_like_transformers(chat: ChatTokenizer, base_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    messages = [
        {"role": "developer", "content": "Only facts."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"x": "é<>"}}}]
    hf = AutoTokenizer.from_pretrained(base_model_dir)
    expected = hf.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert chat.render(messages, tools, add_generation_prompt=True) == expected


def test_literal_special_tokens_are_found_with_their_place(chat: ChatTokenizer) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "hello <|end|> there"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    hits = chat.special_token_hits(example)
    assert [(h.token, h.where, h.offset) for h in hits] == [("<|end|>", "messages[0].content", 6)]
    with pytest.raises(ExampleError, match="special token '<|end|>' in messages\\[0\\].content"):
        chat.check(example, max_seq_len=1024)


def test_too_long_example_is_an_error_not_a_truncation(chat: ChatTokenizer) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "Tell me a story."},
            {"role": "assistant", "content": "the river ran fast " * 40},
        ]
    }
    count = chat.count_tokens(example)
    assert count == len(chat.encode(example)) > 64
    with pytest.raises(ExampleError, match=f"{count} tokens long, over the model's limit of 64"):
        chat.check(example, max_seq_len=64)
    assert len(chat.check(example, max_seq_len=count)) == count


def test_module_is_torch_free() -> None:
    code = "import sys, contracts.chat, contracts.spec; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
