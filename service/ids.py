"""Object ids in OpenAI's style: a prefix and 24 random base-62 characters (`file-...`)."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def random_part(length: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """`new_id("file")` -> `file-AbC...`; `new_id("ftjob")` -> `ftjob-...`."""
    return f"{prefix}-{random_part()}"


def now() -> int:
    """Unix seconds, as every `created_at` in the API."""
    return int(time.time())
