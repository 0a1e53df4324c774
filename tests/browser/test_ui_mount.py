"""The dashboard's mount, in-process (no browser): `/` redirects, `/ui/` serves the page,
and the chart library's URL is a plain 404 when `npm ci` has not run."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.ui
from service.app import create_app
from service.settings import Settings
from tests.conftest import require


def test_root_redirects_to_the_dashboard(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as http:
        response = http.get("/", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"
        page = http.get("/ui/")
        assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
        assert http.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
        assert "/ui/" not in http.get("/openapi.json").text  # not part of the API's schema


def test_without_npm_the_library_is_a_404_and_the_api_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.ui, "VENDOR", {"chart.js": tmp_path / "no-node-modules"})
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as http:
        assert http.get("/ui/vendor/chart.js/chart.umd.min.js").status_code == 404
        assert http.get("/ui/").status_code == 200
        assert http.get("/v1/models").status_code == 401  # the API answers as always


def test_with_npm_the_library_is_served_from_node_modules(tmp_path: Path) -> None:
    require((service.ui.VENDOR["chart.js"] / "chart.umd.min.js").exists(), "run `make ui`")
    with TestClient(create_app(Settings(data_dir=tmp_path))) as http:
        response = http.get("/ui/vendor/chart.js/chart.umd.min.js")
        assert response.status_code == 200 and "Chart" in response.text[:5000]
