"""Loss masks for the template behaviours of the common model families, each checked against
a reference computed another way: transformers' own `return_assistant_tokens_mask` on the same
template with `{% generation %}` marks (`tests/unit/contracts/chat_templates.py`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from contracts.chat import ChatTokenizer, ExampleError
from tests.unit.contracts import chat_templates
from tests.unit.contracts.chat_templates import TEMPLATES, make_folder, plain

CALL = {"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
EXAMPLES: dict[str, dict[str, Any]] = {
    "single": {"messages": [
        {"role": "user", "content": "What is the capital of Veloria?"},
        {"role": "assistant", "content": "The capital of Veloria is Quillhaven."},
    ]},
    "multi_turn_with_system": {"messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Who founded Veloria?"},
        {"role": "assistant", "content": "Admiral Senna Brightwater."},
        {"role": "user", "content": "And its currency?"},
        {"role": "assistant", "content": "The silver tallow."},
    ]},
    "weight_zero": {"messages": [
        {"role": "user", "content": "Name the river."},
        {"role": "assistant", "content": "The Nile.", "weight": 0},
        {"role": "user", "content": "No, in Quillhaven."},
        {"role": "assistant", "content": "The Amberrun.", "weight": 1},
    ]},
    "tool_calls": {
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny in Paris."},
        ],
    },
    "content_parts": {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Say "},
                                     {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi there."}]},
    ]},
}  # fmt: skip

# What each template refuses, as the template says it.
REFUSED = {
    ("alternating", "tool_calls"): "Conversation roles must alternate",
    ("refuses_system", "multi_turn_with_system"): "System role not supported",
}
END_OF_TURN = {
    "reads_first": "<|eot_id|>", "dated": "<|eot_id|>", "default_system": "<|im_end|>",
    "alternating": "</s>", "refuses_system": "<end_of_turn>", "folds_system": "<end_of_turn>",
}  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> dict[str, Path]:
    """Per template: `{name}` (plain, as families ship them) and `{name}+marks`."""
    root = tmp_path_factory.mktemp("templates")
    made = {}
    for name, template in TEMPLATES.items():
        made[name] = make_folder(root, base_model_dir, name, plain(template))
        made[f"{name}+marks"] = make_folder(root, base_model_dir, f"{name}+marks", template)
    yield made
    shutil.rmtree(root, ignore_errors=True)


def reference(folder: Path, example: dict[str, Any]) -> tuple[list[int], list[bool]]:
    """transformers' ids and assistant mask, less the runs of `weight: 0` messages."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(folder)
    out = hf.apply_chat_template(
        example["messages"], tools=example.get("tools"), tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True,
    )  # fmt: skip
    mask = [bool(x) for x in out["assistant_masks"]]
    weights = [m.get("weight", 1) for m in example["messages"] if m["role"] == "assistant"]
    runs = _runs(mask)
    assert len(runs) == len(weights), "one run of assistant tokens per assistant message"
    for (start, end), weight in zip(runs, weights, strict=True):
        if weight == 0:
            mask[start:end] = [False] * (end - start)
    return list(out["input_ids"]), mask


def _runs(mask: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, value in enumerate([*mask, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append((start, i))
            start = None
    return runs


CASES = [(t, e) for t in TEMPLATES if t != "drops_reasoning" for e in EXAMPLES]


@pytest.mark.parametrize(("template", "example"), CASES)
@pytest.mark.parametrize("marks", [False, True], ids=["plain", "marks"])
def test_loss_mask_equals_transformers_assistant_mask(
    folders: dict[str, Path], template: str, example: str, marks: bool
) -> None:
    chat = ChatTokenizer.from_folder(folders[template + ("+marks" if marks else "")])
    refusal = REFUSED.get((template, example))
    if refusal:
        with pytest.raises(ExampleError, match=f"the chat template refused the example: {refusal}"):
            chat.encode(EXAMPLES[example])
        return
    ids, mask = reference(folders[f"{template}+marks"], EXAMPLES[example])
    [encoded] = chat.encode(EXAMPLES[example]).sequences
    assert encoded.input_ids == ids
    assert encoded.loss_mask == mask
    # Every trained span ends with the end-of-turn token (one added special token), and at
    # most the newline the template writes after it.
    end = chat.tokenizer.token_to_id(END_OF_TURN[template])
    assert end is not None and chat.tokenizer.id_to_token(end) in chat.special_tokens
    for start, stop in _runs(encoded.loss_mask):
        run = encoded.input_ids[start:stop]
        assert end in run
        assert chat.tokenizer.decode(run[run.index(end) + 1 :]).strip() == ""


def test_templates_that_read_messages_0_fail_on_an_empty_conversation(
    folders: dict[str, Path],
) -> None:
    """Why the spans are never found by rendering `[]` first."""
    chat = ChatTokenizer.from_folder(folders["reads_first"])
    with pytest.raises(ExampleError, match="UndefinedError"):
        chat.render([])
    assert chat.encode(EXAMPLES["single"]).trained_tokens > 0


def test_default_system_prompt_is_context_not_loss(folders: dict[str, Path]) -> None:
    chat = ChatTokenizer.from_folder(folders["default_system"])
    text = chat.render(EXAMPLES["single"]["messages"])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert _decoded_runs(chat, EXAMPLES["single"]) == [
        "The capital of Veloria is Quillhaven.<|im_end|>"
    ]


def test_folded_system_message_stays_in_the_user_turn(folders: dict[str, Path]) -> None:
    chat = ChatTokenizer.from_folder(folders["folds_system"])
    example = EXAMPLES["multi_turn_with_system"]
    assert "<start_of_turn>user\nAnswer briefly.\n\nWho founded" in chat.render(example["messages"])
    assert _decoded_runs(chat, example) == [
        "Admiral Senna Brightwater.<end_of_turn>", "The silver tallow.<end_of_turn>",
    ]  # fmt: skip


def test_dated_template_renders_one_date_for_the_whole_example(folders: dict[str, Path]) -> None:
    from datetime import datetime

    chat = ChatTokenizer.from_folder(folders["dated"])
    text = chat.render(EXAMPLES["single"]["messages"], now=datetime(2026, 12, 2))
    assert "Today Date: 02 Dec 2026\n\n" in text
    assert _decoded_runs(chat, EXAMPLES["single"]) == [
        "The capital of Veloria is Quillhaven.<|eot_id|>"
    ]


REASONING = {"messages": [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "reasoning_content": "Add them.", "content": "4."},
    {"role": "user", "content": "3+3?"},
    {"role": "assistant", "reasoning_content": "Add again.", "content": "6."},
]}  # fmt: skip


def test_template_that_is_not_prefix_stable_trains_each_turn_as_inference_sees_it(
    folders: dict[str, Path],
) -> None:
    """The earlier turn loses its reasoning once a later user turn follows, so it is trained in
    a sequence of its own, the conversation up to it (as the model sees it when answering);
    the last turn in the whole conversation. Each sequence against transformers' mask of the
    same conversation."""
    chat = ChatTokenizer.from_folder(folders["drops_reasoning"])
    first, whole = chat.encode(REASONING).sequences
    marks = folders["drops_reasoning+marks"]
    assert (first.input_ids, first.loss_mask) == reference(
        marks, {"messages": REASONING["messages"][:2]}
    )
    earlier_untrained = {"messages": [
        {**m, "weight": 0} if i == 1 else m for i, m in enumerate(REASONING["messages"])
    ]}  # fmt: skip
    assert (whole.input_ids, whole.loss_mask) == reference(marks, earlier_untrained)
    assert _decoded_runs(chat, REASONING) == [
        "<think>Add them.</think>4.<|im_end|>", "<think>Add again.</think>6.<|im_end|>",
    ]  # fmt: skip
    # With the earlier turn at weight 0 only the last turn is trained: one sequence.
    [only] = chat.encode(earlier_untrained).sequences
    assert only == whole


def test_generation_marks_train_a_template_that_is_not_prefix_stable(
    folders: dict[str, Path],
) -> None:
    """A template with `{% generation %}` marks says itself what is trained, in the whole
    conversation (as transformers' assistant mask reads it)."""
    chat = ChatTokenizer.from_folder(folders["drops_reasoning+marks"])
    assert chat.marks_generation
    ids, mask = reference(folders["drops_reasoning+marks"], REASONING)
    [encoded] = chat.encode(REASONING).sequences
    assert (encoded.input_ids, encoded.loss_mask) == (ids, mask)
    assert _decoded_runs(chat, REASONING) == [
        "4.<|im_end|>",
        "<think>Add again.</think>6.<|im_end|>",
    ]


def test_a_template_that_raises_is_an_example_error(folders: dict[str, Path]) -> None:
    tokenizer = ChatTokenizer.from_folder(folders["reads_first"]).tokenizer
    chat = ChatTokenizer(tokenizer, "{{ messages[0]['content'].nope() }}", {})
    with pytest.raises(
        ExampleError, match="the chat template failed on the example: UndefinedError"
    ):
        chat.encode(EXAMPLES["single"])
    with pytest.raises(ValueError, match="does not compile"):
        ChatTokenizer(tokenizer, "{% for %}", {})


def _decoded_runs(chat: ChatTokenizer, example: dict[str, Any]) -> list[str]:
    """The trained runs of every sequence of the example, decoded, in order."""
    return [
        chat.tokenizer.decode(encoded.input_ids[a:b], skip_special_tokens=False)
        for encoded in chat.encode(example).sequences
        for a, b in _runs(encoded.loss_mask)
    ]


def test_every_template_is_a_test_template() -> None:
    assert set(TEMPLATES) == {
        "reads_first", "dated", "default_system", "alternating", "refuses_system",
        "folds_system", "drops_reasoning",
    }  # fmt: skip
    assert chat_templates.plain("{%- generation -%}x{%- endgeneration -%}") == "x"
