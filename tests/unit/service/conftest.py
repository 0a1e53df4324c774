"""An app on a fresh SQLite data folder, driven in-process, with keys for two projects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.keys import project_repository as projects
from service.settings import Settings


@dataclass
class ApiClient:
    """A TestClient plus the keys of two projects (`alpha`, `beta`)."""

    http: TestClient
    settings: Settings
    key_a: str
    key_b: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key_a}"}


def make_settings(data_dir: Path, database_url: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url)


def create_key(http: TestClient, project: str) -> str:
    """A key for `project`, made through the app's own session factory."""
    services = http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        return projects.create_api_key(session, projects.get_or_create_project(session, project))


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture()
def api(settings: Settings) -> Iterator[ApiClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))
