"""File validation before any GPU time: the base model's own tokenizer reads every example.

A job's files were checked line by line at upload (`clients.formats`); here the scheduler
checks what only the base model can tell: token counts, examples over its context length,
special tokens of its tokenizer written literally in the text, and the minimum number of
examples. The first problem fails the job with `error.code`, a message naming the line and
the reason, and `error.param` naming the file field. Torch-free: `trainer.chat` needs only
`tokenizers` and `jinja2`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from clients.formats import parse_line
from trainer.chat import ChatTokenizer, ExampleError
from trainer.store import ObjectNotFound, ObjectStore, numbered_lines

MIN_TRAINING_EXAMPLES = 10

FileField = Literal["training_file", "validation_file"]


class FileValidationError(Exception):
    """A file the job cannot train on; `code`, `message` and `param` go to the job's error."""

    def __init__(self, param: FileField, message: str) -> None:
        super().__init__(message)
        self.param: str = param
        self.code = f"invalid_{param}"
        self.message = message


@dataclass(frozen=True)
class FileStats:
    """What the tokenizer found in one valid file."""

    examples: int
    tokens: int
    """Tokens of every example as rendered by the chat template."""
    trained_tokens: int
    """Tokens that carry loss (assistant output), per epoch."""
    longest: int


@lru_cache(maxsize=8)
def chat_tokenizer(model_path: str) -> ChatTokenizer:
    """The base model's tokenizer and chat template, loaded once per model folder."""
    return ChatTokenizer.from_folder(model_path)


def check_chat_file(
    store: ObjectStore,
    key: str,
    *,
    file_id: str,
    param: FileField,
    tokenizer: ChatTokenizer,
    max_seq_len: int,
) -> FileStats:
    """Encode every example of a chat JSONL file; the first bad line raises."""
    label = "Training" if param == "training_file" else "Validation"
    examples = tokens = trained = longest = 0
    try:
        for number, line in numbered_lines(store, key):
            if not line.strip():
                continue
            fmt, example, reason = parse_line(line)
            if reason is None and fmt != "chat":
                reason = f"a {fmt} example; supervised fine-tuning needs chat examples (`messages`)"
            if reason is not None:
                raise FileValidationError(param, f"{label} file {file_id}, line {number}: {reason}")
            try:
                encoded = tokenizer.check(example, max_seq_len)
            except ExampleError as e:
                raise FileValidationError(
                    param, f"{label} file {file_id}, line {number}: {e.reason}"
                ) from e
            examples += 1
            tokens += len(encoded)
            trained += encoded.trained_tokens
            longest = max(longest, len(encoded))
    except ObjectNotFound as e:
        raise FileValidationError(param, f"{label} file {file_id} has no stored content") from e
    if param == "training_file" and examples < MIN_TRAINING_EXAMPLES:
        raise FileValidationError(
            param,
            f"Training file {file_id} has {examples} example{'s' if examples != 1 else ''}; "
            f"fine-tuning needs at least {MIN_TRAINING_EXAMPLES}.",
        )
    if examples == 0:
        raise FileValidationError(param, f"{label} file {file_id} has no examples")
    return FileStats(examples=examples, tokens=tokens, trained_tokens=trained, longest=longest)
