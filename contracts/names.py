"""Fine-tuned model names (docs/architecture.md, "Model names"): the one grammar.

- fine-tuned: `ft:{base}:{project}:{suffix}:{short_id}`; no suffix leaves an empty segment
  (`ft:whetstone-tiny:alpha::AbC12xYz`), as OpenAI does;
- checkpoint: `{fine_tuned_model}:ckpt-step-{N}`.

`{project}` is the project's name when it is made of letters, digits, `-` and `_` (at most 64),
otherwise the project's id, so that every name stays one the LoRA resolver accepts
(`is_valid_name`: letters, digits and `._-` between colons, no `..`). The service makes the
names, the resolver and the supervisor check them, the service reads the base model back.
"""

from __future__ import annotations

import re

PREFIX = "ft:"
CHECKPOINT_MARK = ":ckpt-step-"
SHORT_ID_LENGTH = 8
SUFFIX_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHECKPOINT = re.compile(rf"^(?P<model>{PREFIX}.+){CHECKPOINT_MARK}(?P<step>\d+)$")
# Anything else (slashes, backslashes, spaces; `..` is checked apart) is refused.
_SERVABLE = re.compile(rf"{PREFIX}[A-Za-z0-9._:-]{{1,250}}")


def short_id(job_id: str) -> str:
    """The first 8 characters of the random part of `ftjob-...`."""
    return job_id.split("-", 1)[-1][:SHORT_ID_LENGTH]


def project_segment(project_id: str, project_name: str) -> str:
    return project_name if _SEGMENT.fullmatch(project_name) else project_id


def fine_tuned_model_name(base_model: str, project: str, suffix: str | None, job_id: str) -> str:
    """`ft:{base}:{project}:{suffix}:{short_id}`; `project` is `project_segment(...)`."""
    return f"{PREFIX}{base_model}:{project}:{suffix or ''}:{short_id(job_id)}"


def checkpoint_model_name(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}{CHECKPOINT_MARK}{step}"


def split_checkpoint_name(name: str) -> tuple[str, int] | None:
    """`(fine_tuned_model, step)` of a checkpoint name; None for any other name."""
    match = _CHECKPOINT.match(name)
    if match is None:
        return None
    return match["model"], int(match["step"])


def base_model_of(name: str) -> str | None:
    """The base model segment of a fine-tuned or checkpoint name; None for any other name."""
    parts = name.split(":")
    return parts[1] if len(parts) > 2 and f"{parts[0]}:" == PREFIX else None


def is_valid_name(name: str) -> bool:
    """True for names the resolver may look up: `ft:...` without any path trickery."""
    return _SERVABLE.fullmatch(name) is not None and ".." not in name
