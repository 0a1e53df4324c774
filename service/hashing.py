"""Secrets are kept only as their SHA-256 (hex): API keys and per-attempt trainer tokens."""

from __future__ import annotations

import hashlib
import hmac


def secret_hash(secret: str) -> str:
    """What the database stores for `secret` (64 hex characters)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Whether `secret` is the one `stored_hash` was made from (constant-time compare)."""
    return stored_hash is not None and hmac.compare_digest(secret_hash(secret), stored_hash)
