"""`python -m service.openapi`: print the app's OpenAPI document as YAML (`make openapi`)."""

from __future__ import annotations

from typing import Any

import yaml

from service.app import create_app
from service.settings import Settings


def openapi_document() -> dict[str, Any]:
    """The schema of an app built with default settings; building it touches no disk."""
    return create_app(Settings()).openapi()


def openapi_yaml() -> str:
    text: str = yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
    return text


if __name__ == "__main__":
    print(openapi_yaml(), end="")  # noqa: T201 - the command's output
