"""Path segments for ids: quoted, so names like `ft:base:proj::abc` travel intact."""

from __future__ import annotations

from urllib.parse import quote


def segment(value: str) -> str:
    if not value:
        raise ValueError("expected a non-empty id")
    return quote(value, safe=":")
