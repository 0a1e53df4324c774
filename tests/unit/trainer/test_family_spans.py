"""The loss of the 2026 families' templates, found by content: Qwen 3's thinking template
(reasoning dropped from earlier turns) trains each turn with its reasoning, and the indented
Llama 3 template trains the answers, not the whitespace around its headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts.chat import ChatTokenizer, Encoded
from testing.families import LLAMA3_INDENTED_TEMPLATE, make_family_model

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!", "reasoning_content": "A greeting."},
    {"role": "user", "content": "Again"},
    {"role": "assistant", "content": "Hi again", "reasoning_content": "Still a greeting."},
]


def _trained(chat: ChatTokenizer, sequence: Encoded) -> list[str]:
    """The trained tokens of one sequence, decoded, one string per run of trained tokens."""
    runs: list[list[int]] = [[]]
    for token, trained in zip(sequence.input_ids, sequence.loss_mask, strict=True):
        if trained:
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
    return [chat.tokenizer.decode(r, skip_special_tokens=False) for r in runs if r]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spans")
    return {
        "qwen3": make_family_model("qwen3", root / "qwen3"),
        "indented": make_family_model(
            "llama3", root / "indented", chat_template=LLAMA3_INDENTED_TEMPLATE
        ),
    }


def test_qwen3_trains_each_turn_with_its_reasoning(folders: dict[str, Path]) -> None:
    chat = ChatTokenizer.from_folder(folders["qwen3"])
    example: dict[str, Any] = {"messages": CHAT}
    trained = ["".join(_trained(chat, s)) for s in chat.encode(example).sequences]
    first = "<think>\nA greeting.\n</think>\n\nHello!<|im_end|>"
    last = "<think>\nStill a greeting.\n</think>\n\nHi again<|im_end|>"
    # The first answer is trained with its reasoning, in the rendering the model sees when it
    # is the last turn; the last answer with its own; nothing else is trained.
    assert any(t.startswith(first) or t.endswith(first) for t in trained), trained
    assert any(t.endswith(last) for t in trained), trained
    everything = "".join(trained)
    assert "Be brief." not in everything and "Again" not in everything.replace("Hi again", "")


def test_the_indented_llama3_template_trains_the_answers(folders: dict[str, Path]) -> None:
    chat = ChatTokenizer.from_folder(folders["indented"])
    plain = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in CHAT]
    sequences = chat.encode({"messages": plain}).sequences  # one per answer, after its prompt
    runs = [r.strip() for sequence in sequences for r in _trained(chat, sequence)]
    assert runs == ["Hello!<|eot_id|>", "Hi again<|eot_id|>"]
    turns = [i for i, m in enumerate(plain) if m["role"] == "assistant"]
    for i, sequence in zip(turns, sequences, strict=True):
        prompt = chat.render(plain[:i], add_generation_prompt=True)
        text = chat.tokenizer.decode(sequence.input_ids, skip_special_tokens=False)
        assert text.startswith(prompt) and text[len(prompt) :].strip() == runs[turns.index(i)]
