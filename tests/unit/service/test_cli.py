"""`whetstone keys create --project NAME` makes a project and a key that the API accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.cli import register
from service.db.tables import ApiKey
from service.settings import Settings


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_keys_create_prints_a_key_the_api_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHETSTONE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    first = runner.invoke(_cli(), ["keys", "create", "--project", "alpha"])
    second = runner.invoke(_cli(), ["keys", "create", "--project", "alpha"])
    assert first.exit_code == 0, first.output
    key1, key2 = first.stdout.strip(), second.stdout.strip()
    assert key1.startswith("sk-whet-") and key1 != key2

    with TestClient(create_app(Settings())) as http:
        for key in (key1, key2):
            r = http.get("/v1/files", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
        services = http.app.state.services  # type: ignore[attr-defined]
        with services.sessions() as session:
            stored = [row.key_hash for row in session.query(ApiKey)]
    assert len(stored) == 2
    assert key1 not in stored and all(len(h) == 64 for h in stored)
