"""File validation with the base model's real tokenizer (the small built-in model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.local_store import LocalStore
from service.fine_tuning.validation import (
    FileValidationError,
    chat_tokenizer,
    check_chat_file,
    check_preference_file,
    check_reinforcement_file,
)


def _example(question: str, answer: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def _write(store: LocalStore, key: str, examples: list[dict[str, object]]) -> None:
    store.put_bytes(key, "".join(json.dumps(e) + "\n" for e in examples).encode())


def _check(store: LocalStore, base_model_dir: Path, param: str = "training_file", **kw: int):  # type: ignore[no-untyped-def]
    return check_chat_file(
        store,
        "files/file-x",
        file_id="file-x",
        param=param,  # type: ignore[arg-type]
        tokenizer=chat_tokenizer(str(base_model_dir)),
        max_seq_len=kw.get("max_seq_len", 1024),
    )


def test_counts_tokens_of_a_good_file(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    _write(store, "files/file-x", [_example(f"Question {i}?", f"Answer {i}.") for i in range(12)])
    stats = _check(store, base_model_dir)
    assert stats.examples == 12
    assert 0 < stats.trained_tokens < stats.tokens
    assert stats.longest <= stats.tokens


def test_literal_special_token_names_line_and_token(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    examples = [_example(f"Question {i}?", f"Answer {i}.") for i in range(12)]
    examples[2] = _example("Say <|end|> please", "No.")
    _write(store, "files/file-x", examples)
    with pytest.raises(FileValidationError) as caught:
        _check(store, base_model_dir)
    assert caught.value.code == "invalid_training_file"
    assert caught.value.param == "training_file"
    assert "line 3" in caught.value.message and "<|end|>" in caught.value.message


def test_example_over_the_context_length(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    examples = [_example(f"Question {i}?", f"Answer {i}.") for i in range(12)]
    examples[5] = _example("word " * 200, "Answer.")
    _write(store, "files/file-x", examples)
    with pytest.raises(FileValidationError) as caught:
        _check(store, base_model_dir, max_seq_len=64)
    assert "line 6" in caught.value.message and "over the model's limit of 64" in str(caught.value)


def test_fewer_than_ten_examples(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    _write(store, "files/file-x", [_example("Q?", "A.") for _ in range(9)])
    with pytest.raises(FileValidationError) as caught:
        _check(store, base_model_dir)
    assert "has 9 examples" in caught.value.message and "at least 10" in caught.value.message


def test_validation_file_in_the_preference_format(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    preference = {
        "input": {"messages": [{"role": "user", "content": "Hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away"}],
    }
    _write(store, "files/file-x", [preference])
    with pytest.raises(FileValidationError) as caught:
        _check(store, base_model_dir, param="validation_file")
    error = caught.value
    assert (error.code, error.param) == ("invalid_validation_file", "validation_file")
    assert "line 1" in error.message and "preference" in error.message


def _preference(question: str, preferred: str, other: str) -> dict[str, object]:
    return {
        "input": {"messages": [{"role": "user", "content": question}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": other}],
    }


def _check_preferences(store: LocalStore, base_model_dir: Path, max_seq_len: int = 1024):  # type: ignore[no-untyped-def]
    return check_preference_file(
        store, "files/file-x", file_id="file-x", param="training_file",
        tokenizer=chat_tokenizer(str(base_model_dir)), max_seq_len=max_seq_len,
    )  # fmt: skip


def test_preference_file_counts_both_sides(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    pairs = [_preference(f"Question {i}?", f"Answer {i}.", "No idea.") for i in range(12)]
    _write(store, "files/file-x", pairs)
    stats = _check_preferences(store, base_model_dir)
    tokenizer = chat_tokenizer(str(base_model_dir))
    chosen = tokenizer.encode(_example("Question 0?", "Answer 0."))
    assert stats.examples == 12 and stats.tokens > 12 * len(chosen)
    assert 0 < stats.trained_tokens < stats.tokens


def test_preference_side_over_the_context_length_names_the_side(
    tmp_path: Path, base_model_dir: Path
) -> None:
    store = LocalStore(tmp_path)
    pairs = [_preference(f"Question {i}?", f"Answer {i}.", "No idea.") for i in range(12)]
    pairs[4] = _preference("Question?", "Short.", "word " * 200)
    _write(store, "files/file-x", pairs)
    with pytest.raises(FileValidationError) as caught:
        _check_preferences(store, base_model_dir, max_seq_len=64)
    error = caught.value
    assert (error.code, error.param) == ("invalid_training_file", "training_file")
    assert "line 5" in error.message and "non_preferred_output" in error.message
    assert "over the model's limit of 64" in error.message


def test_chat_lines_in_a_dpo_training_file(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    _write(store, "files/file-x", [_example(f"Question {i}?", f"Answer {i}.") for i in range(12)])
    with pytest.raises(FileValidationError) as caught:
        _check_preferences(store, base_model_dir)
    assert "line 1" in caught.value.message and "preference examples" in caught.value.message


def _prompt(question: str, **fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": question}], **fields}


def _check_prompts(store: LocalStore, base_model_dir: Path, max_seq_len: int = 1024):  # type: ignore[no-untyped-def]
    return check_reinforcement_file(
        store, "files/file-x", file_id="file-x", param="training_file",
        tokenizer=chat_tokenizer(str(base_model_dir)), max_seq_len=max_seq_len,
    )  # fmt: skip


def test_reinforcement_file_counts_its_prompts(tmp_path: Path, base_model_dir: Path) -> None:
    store = LocalStore(tmp_path)
    _write(store, "files/file-x", [_prompt(f"Question {i}?", answer=str(i)) for i in range(12)])
    stats = _check_prompts(store, base_model_dir)
    assert stats.examples == 12 and stats.tokens > 12 and stats.trained_tokens == 0


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (_example("Question?", "An answer to train on."), "a chat example"),
        (_prompt("Say <|end|> please"), "<|end|>"),
        (_prompt("word " * 200), "leaving no room for an answer within the model's limit of 64"),
        ({"messages": []}, "line 4"),
    ],
    ids=["chat_line", "special_token", "too_long", "no_messages"],
)
def test_a_bad_reinforcement_line_fails_with_its_line_number(
    tmp_path: Path, base_model_dir: Path, bad: dict[str, object], said: str
) -> None:
    store = LocalStore(tmp_path)
    prompts = [_prompt(f"Question {i}?", answer=str(i)) for i in range(12)]
    prompts[3] = bad
    _write(store, "files/file-x", prompts)
    with pytest.raises(FileValidationError) as caught:
        _check_prompts(store, base_model_dir, max_seq_len=64)
    error = caught.value
    assert (error.code, error.param) == ("invalid_training_file", "training_file")
    assert "line 4" in error.message and said in error.message, error.message
