"""File validation before any GPU time: the base model's own tokenizer reads every example.

A job's files were checked line by line at upload (`contracts.formats`); here the scheduler
checks what only the base model can tell: token counts, examples over its context length,
special tokens of its tokenizer written literally in the text, and the minimum number of
examples. A DPO job's preference files are checked side by side, each side the chat
example `input.messages + output` (`contracts.preference`), as the trainer encodes them. A
reinforcement job's files hold prompts (`contracts.formats` reinforcement lines): each is
rendered with the generation prompt, as the trainer samples it, and must leave room for an
answer within the context length. The first problem fails the job with `error.code`, a
message naming the line and the reason, and `error.param` naming the file field; an example
the chat template or the tokenizer fails on (any exception, not only `ExampleError`) is such
a problem too. A base model whose folder, tokenizer or chat template cannot be loaded raises
`BaseModelError`.
Torch-free: `contracts.chat` needs only `tokenizers` and `jinja2`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from jinja2 import TemplateError

from contracts.chat import ChatTokenizer, ExampleError
from contracts.formats import parse_line
from contracts.preference import check_pair
from contracts.store import ObjectNotFound, ObjectStore, numbered_lines
from service.errors import describe

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
    sequences: int
    """Sequences the examples became: one each, or with a chat template that is not
    prefix-stable one more per trained turn it renders otherwise later (`contracts.chat`)."""
    tokens: int
    """Tokens of every sequence as rendered by the chat template."""
    trained_tokens: int
    """Tokens that carry loss (assistant output), per epoch."""
    longest: int


class BaseModelError(Exception):
    """A base model whose tokenizer cannot be loaded; the message names the model and why."""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def load_chat_tokenizer(name: str, path: str) -> ChatTokenizer:
    """The tokenizer of base model `name` in folder `path`, or `BaseModelError`: whatever
    `tokenizers`, `json` and `jinja2` raise (`tokenizers` raises bare `Exception`)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BaseModelError(f"Base model {name}: folder {folder} is missing.")
    if not (folder / "tokenizer.json").is_file():
        raise BaseModelError(f"Base model {name}: {folder / 'tokenizer.json'} is missing.")
    try:
        return chat_tokenizer(str(folder))
    except Exception as e:
        raise BaseModelError(
            f"Base model {name}: the tokenizer or chat template in {folder} cannot be loaded "
            f"({describe(e)})."
        ) from e


def chat_tokenizer(model_path: str) -> ChatTokenizer:
    """The base model's tokenizer and chat template, loaded once per version of its files
    (a folder whose files change is loaded again)."""
    return _cached_tokenizer(model_path, _stamp(Path(model_path)))


@lru_cache(maxsize=8)
def _cached_tokenizer(model_path: str, stamp: tuple[tuple[str, int, int], ...]) -> ChatTokenizer:
    return ChatTokenizer.from_folder(model_path)


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    stamp = []
    for name in TOKENIZER_FILES:
        try:
            stat = (folder / name).stat()
        except OSError:
            continue
        stamp.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(stamp)


def example_failure(error: Exception) -> str:
    """Why encoding one example raised something other than `ExampleError`."""
    if isinstance(error, TemplateError) or _raised_in_template(error.__traceback__):
        return f"the chat template failed: {describe(error)}"
    return f"the tokenizer failed: {describe(error)}"


def _raised_in_template(tb: TracebackType | None) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":  # jinja2's compiled templates
            return True
        tb = tb.tb_next
    return False


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

    def encode(example: Any) -> tuple[int, int, int, int]:
        encoded = tokenizer.check(example, max_seq_len)
        return len(encoded.sequences), len(encoded), encoded.trained_tokens, encoded.longest

    wrong = "supervised fine-tuning needs chat examples (`messages`)"
    return _check_file(store, key, file_id, param, "chat", wrong, encode)


def check_preference_file(
    store: ObjectStore,
    key: str,
    *,
    file_id: str,
    param: FileField,
    tokenizer: ChatTokenizer,
    max_seq_len: int,
) -> FileStats:
    """Encode both sides of every example of a preference JSONL file (DPO), as the trainer
    does (`contracts.preference`); the first bad line raises, naming the side."""

    def encode(example: Any) -> tuple[int, int, int, int]:
        pair = check_pair(tokenizer, example, max_seq_len)
        return 1, len(pair), pair.trained_tokens, max(len(pair.chosen), len(pair.rejected))

    wrong = "DPO needs preference examples (`input`, `preferred_output`, `non_preferred_output`)"
    return _check_file(store, key, file_id, param, "preference", wrong, encode)


def check_reinforcement_file(
    store: ObjectStore,
    key: str,
    *,
    file_id: str,
    param: FileField,
    tokenizer: ChatTokenizer,
    max_seq_len: int,
) -> FileStats:
    """Render every prompt of a reinforcement JSONL file as the trainer samples it (with
    the generation prompt); the first bad line raises. Nothing is trained on the prompt
    itself, so `trained_tokens` counts none."""

    def encode(example: Any) -> tuple[int, int, int, int]:
        hits = tokenizer.special_token_hits(example)
        if hits:
            raise ExampleError(f"{hits[0]}: special tokens are not allowed in message text")
        text = tokenizer.render(
            example["messages"], example.get("tools"), add_generation_prompt=True,
            template_kwargs=example.get("chat_template_kwargs"),
        )  # fmt: skip
        size = len(tokenizer.tokenizer.encode(text, add_special_tokens=False).ids)
        if size >= max_seq_len:
            raise ExampleError(
                f"the prompt is {size} tokens long, leaving no room for an answer within the "
                f"model's limit of {max_seq_len}; shorten it"
            )
        return 1, size, 0, size

    wrong = (
        "reinforcement fine-tuning needs prompts: `messages` ending with a user or developer "
        "message (the model answers it), plus any fields the grader reads"
    )
    return _check_file(store, key, file_id, param, "reinforcement", wrong, encode)


def _check_file(
    store: ObjectStore,
    key: str,
    file_id: str,
    param: FileField,
    wanted: str,
    wrong_format: str,
    encode: Callable[[Any], tuple[int, int, int, int]],
) -> FileStats:
    """Every line through `encode` (sequences, tokens, trained tokens, longest sequence)."""
    label = "Training" if param == "training_file" else "Validation"
    examples = sequences = tokens = trained = longest = 0
    try:
        for number, line in numbered_lines(store, key):
            if not line.strip():
                continue
            fmt, example, reason = parse_line(line)
            if reason is None and fmt != wanted:
                reason = f"a {fmt} example; {wrong_format}"
            if reason is not None:
                raise FileValidationError(param, f"{label} file {file_id}, line {number}: {reason}")
            try:
                count, size, carried, length = encode(example)
            except ExampleError as e:
                raise FileValidationError(
                    param, f"{label} file {file_id}, line {number}: {e.reason}"
                ) from e
            except Exception as e:  # a template or tokenizer bug shown by this example
                raise FileValidationError(
                    param, f"{label} file {file_id}, line {number}: {example_failure(e)}"
                ) from e
            examples += 1
            sequences += count
            tokens += size
            trained += carried
            longest = max(longest, length)
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
    return FileStats(examples, sequences, tokens, trained_tokens=trained, longest=longest)
