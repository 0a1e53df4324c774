"""`openapi.yaml` at the root is the app's schema, with OpenAI's operation ids."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.openapi import openapi_document, openapi_yaml

ROOT = Path(__file__).resolve().parents[3]


def test_openapi_yaml_is_current() -> None:
    committed = (ROOT / "openapi.yaml").read_text()
    assert committed == openapi_yaml(), (
        "openapi.yaml is stale: regenerate it with `make openapi` "
        "(.venv/bin/python -m service.openapi > openapi.yaml)"
    )


def test_operation_ids_are_openais() -> None:
    ops = {
        op["operationId"] for path in openapi_document()["paths"].values() for op in path.values()
    }
    assert {"createFile", "listFiles", "retrieveFile", "deleteFile", "downloadFile"} <= ops


def test_admin_operation_ids_are_openais() -> None:
    ops = {
        op["operationId"] for path in openapi_document()["paths"].values() for op in path.values()
    }
    assert {
        "listFineTuningCheckpointPermissions",
        "createFineTuningCheckpointPermission",
        "deleteFineTuningCheckpointPermission",
        "list-projects",
        "create-project",
        "retrieve-project",
        "archive-project",
        "list-project-api-keys",
        "retrieve-project-api-key",
        "delete-project-api-key",
    } <= ops


def test_no_fastapi_422_in_the_contract() -> None:
    doc = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    for path in doc["paths"].values():
        for op in path.values():
            assert "422" not in op["responses"]
