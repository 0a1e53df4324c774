"""Browser fixtures: Debian's chromium, headless, driven by Playwright for Python (never
Playwright's own browsers), against a real server on a loopback port.

Missing chromium or playwright skips these tests with the reason (fails them in CI):
`make browser` installs chromium (`apt-get install -y chromium`) when root.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser import standins
from tests.conftest import require
from tests.e2e.conftest import Server, start_server

CHROMIUM = os.environ.get("WHETSTONE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"chromium not found at {CHROMIUM} (make browser, or apt-get install -y chromium)"
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One chromium for the browser tests. Package-scoped: Playwright's sync API runs an
    event loop in this thread while it is open, and `asyncio.run` in the tests after these
    would refuse to start beside it."""
    missing = chromium_missing()
    require(missing is None, missing or "")
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def chart_library() -> None:
    """Chart.js, which `make ui` (`npm ci` in service/ui) installs into node_modules."""
    from service.ui import VENDOR

    require(
        (VENDOR["chart.js"] / "chart.umd.min.js").exists(),
        "Chart.js not installed: run `make ui` (npm ci in service/ui)",
    )


@dataclass
class Dashboard:
    """A server with project `alpha`'s stand-in jobs; `beta` (key_b) has nothing."""

    server: Server
    succeeded_job: str
    tuned_model: str
    running_job: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from service.settings import Settings

    data_dir = tmp_path_factory.mktemp("dashboard")
    with start_server(data_dir) as server:
        store_url = Settings(data_dir=data_dir).resolved_object_store_url
        done = standins.create_job(server.url, server.key_a, "veloria")
        standins.start_running(data_dir, done, standins.STEPS)
        model = standins.succeed(data_dir, done, store_url)
        running = standins.create_job(server.url, server.key_a, "live")
        standins.start_running(data_dir, running, 12)
        yield Dashboard(server, done, model, running)


def new_page(browser: Any, width: int = 1280, height: int = 900) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def log_in(page: Any, url: str, key: str, path: str = "") -> None:
    """Open the dashboard at `/` (a redirect to /ui/) and sign in as a person would."""
    page.goto(f"{url}/{path}")
    page.fill("#api-key", key)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
