"""Preference examples (DPO) -> two encoded conversations: the preferred and the non-preferred.

A preference line (`contracts.formats`) is `input.messages` (and `input.tools`), then
`preferred_output` and `non_preferred_output`, each one assistant turn. Each side is encoded
as the chat example `input.messages + output` with the base model's chat template
(`contracts.chat.ChatTokenizer`): the prompt is the template of `input.messages` with its
generation prompt, and only the output's tokens carry loss (assistant messages inside
`input.messages` get weight 0). The scheduler validates files with these same functions and
the trainer builds its dataset with them. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from contracts.chat import ChatTokenizer, Encoded, ExampleError

Side = Literal["preferred_output", "non_preferred_output"]
SIDES: tuple[Side, Side] = ("preferred_output", "non_preferred_output")


@dataclass(frozen=True)
class EncodedPair:
    """One preference example: the preferred (`chosen`) and non-preferred (`rejected`) side."""

    chosen: Encoded
    rejected: Encoded

    def __len__(self) -> int:
        return len(self.chosen) + len(self.rejected)

    @property
    def trained_tokens(self) -> int:
        return self.chosen.trained_tokens + self.rejected.trained_tokens


def conversation(example: dict[str, Any], side: Side) -> dict[str, Any]:
    """The chat example of one side: the input's messages (assistant ones untrained), then
    that side's output."""
    source = example["input"]
    prompt = [
        {**m, "weight": 0} if m.get("role") == "assistant" else dict(m) for m in source["messages"]
    ]
    output = [{k: v for k, v in m.items() if k != "weight"} for m in example[side]]
    chat: dict[str, Any] = {"messages": prompt + output}
    if source.get("tools"):
        chat["tools"] = source["tools"]
    return chat


def check_pair(chat: ChatTokenizer, example: dict[str, Any], max_seq_len: int) -> EncodedPair:
    """Encode both sides for training, or raise `ExampleError` naming the side and why."""
    encoded = []
    for side in SIDES:
        try:
            sequences = chat.check(conversation(example, side), max_seq_len).sequences
        except ExampleError as e:
            raise ExampleError(f"{side}: {e.reason}", e.line) from e
        if len(sequences) != 1:
            raise ExampleError(
                f"{side}: the chat template renders its assistant messages differently once "
                "later ones follow, so the output is not one sequence; give it one message"
            )
        encoded.append(sequences[0])
    return EncodedPair(encoded[0], encoded[1])
