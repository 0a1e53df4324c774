"""Model names (docs/architecture.md, "Model names").

- fine-tuned: `ft:{base}:{project}:{suffix}:{short_id}`; no suffix leaves an empty segment
  (`ft:whetstone-tiny:alpha::AbC12xYz`), as OpenAI does;
- checkpoint: `{fine_tuned_model}:ckpt-step-{N}`.

`{project}` is the project's name when it is made of letters, digits, `-` and `_` (at most 64),
otherwise the project's id, so that every name stays one the LoRA resolver accepts.
"""

from __future__ import annotations

import re

SHORT_ID_LENGTH = 8
SUFFIX_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHECKPOINT = re.compile(r"^(?P<model>ft:.+):ckpt-step-(?P<step>\d+)$")


def short_id(job_id: str) -> str:
    """The first 8 characters of the random part of `ftjob-...`."""
    return job_id.split("-", 1)[-1][:SHORT_ID_LENGTH]


def project_segment(project_id: str, project_name: str) -> str:
    return project_name if _SEGMENT.fullmatch(project_name) else project_id


def fine_tuned_model_name(base_model: str, project: str, suffix: str | None, job_id: str) -> str:
    """`ft:{base}:{project}:{suffix}:{short_id}`; `project` is `project_segment(...)`."""
    return f"ft:{base_model}:{project}:{suffix or ''}:{short_id(job_id)}"


def checkpoint_model_name(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}:ckpt-step-{step}"


def split_checkpoint_name(name: str) -> tuple[str, int] | None:
    """`(fine_tuned_model, step)` of a checkpoint name; None for any other name."""
    match = _CHECKPOINT.match(name)
    if match is None:
        return None
    return match["model"], int(match["step"])
