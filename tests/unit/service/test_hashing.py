"""API keys and attempt tokens are stored as one kind of hash, checked one way."""

from __future__ import annotations

import hashlib

from service.hashing import secret_hash, secret_matches


def test_a_secret_is_stored_as_its_sha256_and_only_it_matches() -> None:
    stored = secret_hash("sk-whet-abc")
    assert stored == hashlib.sha256(b"sk-whet-abc").hexdigest() and len(stored) == 64
    assert secret_matches("sk-whet-abc", stored)
    assert not secret_matches("sk-whet-abd", stored)
    assert not secret_matches("sk-whet-abc", None)  # an attempt whose token was cleared
