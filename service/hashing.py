"""Secrets are kept only as their SHA-256 (hex): API keys and per-attempt trainer tokens.
And the `cache_salt` each project's requests to vLLM carry."""

from __future__ import annotations

import hashlib
import hmac


def secret_hash(secret: str) -> str:
    """What the database stores for `secret` (64 hex characters)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Whether `secret` is the one `stored_hash` was made from (constant-time compare)."""
    return stored_hash is not None and hmac.compare_digest(secret_hash(secret), stored_hash)


def cache_salt(project_id: str, asked: str | None = None) -> str:
    """The `cache_salt` vLLM gets for a project's requests (chat, the evaluation): vLLM
    shares cached prompt prefixes only between requests of one salt, so no other project's
    request shares (and can time) this project's. A caller's own salt (`asked`) divides its
    project's cache further but never yields another project's salt."""
    return hashlib.sha256(f"{project_id}\0{asked or ''}".encode()).hexdigest()
