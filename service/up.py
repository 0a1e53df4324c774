"""`whetstone up`: the whole stack on one machine.

The API, the scheduler with the local executor, and one vLLM per base model (through the
serving supervisor), over SQLite and a `file://` object store in the data folder. The
built-in base model is built on first start (in a subprocess: this process never imports
torch), as is a default project with an API key, printed once. Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TextIO

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.gpus import detect_gpus, fit_warnings, plan_devices, weights_bytes
from service.http_limits import capped_http
from service.hub import is_pulled, pull
from service.keys import project_repository as projects
from service.logs import configure_logging, uvicorn_log_config
from service.running import remove_server_file, write_server_file
from service.runtime import Runtime
from service.settings import Settings
from serving.launcher import BaseModelEntry, ResolverSettings
from serving.supervisor import Supervisor

DEFAULT_PROJECT = "default"
log = logging.getLogger("whetstone")


def ensure_base_models(runtime: Runtime) -> None:
    """Build the built-in tiny base model when the default registry needs it, and download
    the registry's models named by `source` that are not in their folder yet (HubError)."""
    settings = runtime.settings
    if settings.base_models_file is not None:
        for entry in runtime.registry.values():
            if entry.source is None:
                continue
            if is_pulled(entry):
                log.info("%s: %s is in %s", entry.name, entry.source, entry.path)
                continue
            log.info(
                "Downloading %s from %s into %s (first start only)",
                entry.name,
                entry.source,
                entry.path,
            )
            result = pull(entry)
            log.info("%s: downloaded (commit %s)", entry.name, result.commit[:12])
        return
    path = settings.tiny_model_dir
    if (path / "config.json").exists():
        return
    log.info("Building the built-in base model in %s (first start only)", path)
    subprocess.run([sys.executable, "-m", "trainer", "make-base-model", str(path)], check=True)


def ensure_default_key(sessions: sessionmaker[Session]) -> str | None:
    """On first start, the default project and its key (returned once); later None."""
    with sessions() as session, session.begin():
        if projects.find_project(session, DEFAULT_PROJECT) is not None:
            return None
        return projects.create_api_key(
            session, projects.get_or_create_project(session, DEFAULT_PROJECT)
        )


FIRST_KEY_FILE = "first-api-key"


def show_first_key(key: str, data_dir: Path, terminal: TextIO | None = None) -> None:
    """The default project's first key, once, and never through logging (whose lines may
    go to a file, a journal or a log collector): written straight to the terminal when
    `whetstone up` has one (stderr); otherwise (a service, a container, output piped to a
    file) to `{data_dir}/first-api-key`, readable by this user only, and the log says where."""
    terminal = sys.stderr if terminal is None else terminal
    if terminal.isatty():
        terminal.write(f"API key for project '{DEFAULT_PROJECT}': {key} (shown once)\n")
        terminal.flush()
        return
    path = data_dir / FIRST_KEY_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    log.info(
        "API key for project %r written to %s (no terminal to show it on; readable by this "
        "user only): read it, then delete the file",
        DEFAULT_PROJECT,
        path,
    )


def apply_device_plan(
    settings: Settings, models: list[BaseModelEntry], environ: Mapping[str, str] | None = None
) -> tuple[Settings, list[BaseModelEntry]]:
    """Split this machine's GPUs between vLLM and the trainers (`service.gpus`), say how, and
    return the settings (`trainer_gpus`) and registry entries (`serving`) that carry it."""
    planned = [
        m for m in models if m.serving.device == "gpu" and m.serving.cuda_visible_devices is None
    ]
    trainer_gpus = settings.trainer_gpus
    if settings.executor != "local" and trainer_gpus.strip() == "auto":
        trainer_gpus = "none"  # trainers run elsewhere: every GPU here is vLLM's
    try:
        plan = plan_devices(
            detect_gpus(os.environ if environ is None else environ),
            [m.name for m in planned],
            settings.trainer_slots,
            trainer_gpus=trainer_gpus,
            vllm_gpus=settings.vllm_gpus,
            share_when_shared=settings.vllm_gpu_share_when_shared,
            memory_utilization={m.name: m.serving.gpu_memory_utilization for m in planned},
        )
    except ValueError as e:
        raise SystemExit(f"whetstone up: {e}") from e
    for line in plan.lines:
        if settings.executor == "local" or not line.startswith("trainers:"):
            log.info("%s", line)
    for line in fit_warnings(plan, {m.name: weights_bytes(Path(m.path)) for m in planned}):
        log.warning("%s", line)
    entries = []
    for entry in models:
        if entry.name in plan.vllm:
            serving = entry.serving.model_copy(
                update={
                    "cuda_visible_devices": plan.vllm[entry.name],
                    "gpu_memory_utilization": plan.vllm_memory[entry.name],
                }
            )
            entry = entry.model_copy(update={"serving": serving})
        entries.append(entry)
    if settings.executor == "local":
        settings = settings.model_copy(update={"trainer_gpus": plan.trainer_gpus_setting})
    return settings, entries


def make_supervisor(settings: Settings, models: list[BaseModelEntry]) -> Supervisor:
    data = settings.resolved_data_dir
    resolver = ResolverSettings(
        object_store_url=settings.resolved_object_store_url,
        lora_cache_dir=str(data / "lora-cache"),
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    return Supervisor(models=models, resolver=resolver, log_dir=data / "logs" / "vllm")


def _announce_when_ready(supervisor: Supervisor, name: str) -> None:
    try:
        supervisor.wait_ready(name)
    except TimeoutError:
        log.error("vLLM for %s did not become ready; see its log in the data folder", name)
        return
    log.info("vLLM for %s is ready: chat completions work", name)


def run(settings: Settings) -> None:
    """Start everything, serve until Ctrl-C, then stop everything that was started."""
    configure_logging(settings.log_format, "%(asctime)s %(message)s", datefmt="%H:%M:%S")
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    with Runtime(settings) as runtime:  # the app opens its own, with the planned settings
        ensure_base_models(runtime)
        key = ensure_default_key(runtime.sessions)
        models = list(runtime.registry.values())
    settings, models = apply_device_plan(settings, models)
    supervisor = make_supervisor(settings, models)
    supervisor.start()
    for entry in models:
        threading.Thread(
            target=_announce_when_ready, args=(supervisor, entry.name), daemon=True
        ).start()
    try:
        _serve(settings, supervisor, key)
    finally:
        remove_server_file(settings)
        supervisor.stop()
        log.info("Stopped.")


class _DrainingServer(uvicorn.Server):
    """uvicorn, but the first Ctrl-C (or SIGTERM) first drains the scheduler: the running
    trainers save a checkpoint and report it while the API still answers. A second Ctrl-C
    stops at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        threading.Thread(target=self._drain_then_exit, args=(sig, frame), daemon=True).start()

    def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            background = getattr(self._app.state, "background", None)
            if background is not None:
                log.info("Stopping: running jobs save a checkpoint first (Ctrl-C again: now)")
                for job_id in background.drain():
                    log.info("%s will resume from its last checkpoint on the next start", job_id)
        except Exception:
            log.exception("could not stop the running jobs cleanly")
        finally:
            super().handle_exit(sig, frame)


def _serve(settings: Settings, supervisor: Supervisor, key: str | None) -> None:
    from service.app import create_app

    app = create_app(settings, supervisor=supervisor, run_scheduler=True)
    server = _DrainingServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=uvicorn_log_config(settings.log_format),
            http=capped_http(settings.max_header_bytes),
        ),
        app,
    )
    url = f"http://{settings.host}:{settings.port}/v1"

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            write_server_file(settings, url)  # for `whetstone keys create`: which folder
            log.info("API at %s", url)
            if key:
                show_first_key(key, settings.resolved_data_dir)
            else:
                log.info(
                    "API key: the one shown (or written to %s) on first start, or a new one from "
                    "`WHETSTONE_DATA_DIR=%s whetstone keys create --project %s`",
                    FIRST_KEY_FILE,
                    settings.resolved_data_dir,
                    DEFAULT_PROJECT,
                )
            log.info("Whetstone is ready: base URL %s", url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
