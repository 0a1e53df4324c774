"""The web dashboard: static HTML and ES modules under `static/`, served by the API itself.

The dashboard is a client of the public API (`/v1/...`, `Authorization: Bearer KEY`): the
server adds nothing but the files. The one third-party script, Chart.js, comes from npm
(`package.json` and `package-lock.json` here, `npm ci` in `make install`) and is served
from `node_modules/` as it is; nothing of it is committed. When `npm ci` has not run, its
URL answers 404 and the dashboard says the chart is unavailable; everything else works.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

UI_PATH = "/ui"
HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
NODE_MODULES = HERE / "node_modules"
# URL prefix under /ui/vendor/ -> folder inside node_modules (each package's dist only).
VENDOR = {"chart.js": NODE_MODULES / "chart.js" / "dist"}


class OptionalStaticFiles(StaticFiles):
    """StaticFiles whose folder may not exist yet (`npm ci` not run): 404, not a crash.
    The folder is looked for again on each request until it exists."""

    async def check_config(self) -> None:
        if self.directory is None or not os.path.isdir(self.directory):
            raise HTTPException(status_code=404)


def mount_ui(app: FastAPI) -> None:
    """`/` redirects to `/ui/`; `/ui/` serves the dashboard, `/ui/vendor/` the npm files."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)

    for name, folder in VENDOR.items():  # before /ui: the first matching mount answers
        app.mount(
            f"{UI_PATH}/vendor/{name}",
            OptionalStaticFiles(directory=folder, check_dir=False),
            name=f"ui-vendor-{name}",
        )
    app.mount(UI_PATH, StaticFiles(directory=STATIC_DIR, html=True), name="ui")
