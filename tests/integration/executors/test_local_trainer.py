"""The local executor running the real trainer command (`python -m trainer run ...`).

A spec that does not exist is the cheapest real run: the trainer must exit 2 (bad spec, not
retried) and say why over the progress channel, authenticated with the attempt's token.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from service.executors.base import Attempt, Outcome
from service.executors.local import LocalExecutor
from tests.conftest import require
from tests.unit.executors.conftest import wait_finished


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str | None, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
        payload = b'{"action": "continue"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def progress_endpoint() -> Iterator[tuple[str, list[tuple[str, str | None, dict[str, Any]]]]]:
    received: list[tuple[str, str | None, dict[str, Any]]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def test_real_trainer_with_a_missing_spec_fails_for_good_and_says_why(
    tmp_path: Path, progress_endpoint: tuple[str, list[tuple[str, str | None, dict[str, Any]]]]
) -> None:
    require(importlib.util.find_spec("trainer.entry") is not None, "trainer.entry is not there")
    base, received = progress_endpoint
    executor = LocalExecutor(tmp_path)  # the default command: sys.executable -m trainer
    attempt = Attempt(
        job_id="ftjob-missing",
        number=1,
        spec_url=(tmp_path / "nowhere" / "spec.json").as_uri(),
        report_url=f"{base}/internal/v1/jobs/ftjob-missing/report",
        token="attempt-token-1",
        base_model="whetstone-tiny",
    )
    handle = executor.launch(attempt)
    state = wait_finished(executor, handle, timeout=120)
    log = executor.log_path("ftjob-missing", 1).read_text()
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, 2, False), log
    assert received, "the trainer reported nothing"
    assert all(auth == "Bearer attempt-token-1" for _, auth, _ in received)
    assert all(path == "/internal/v1/jobs/ftjob-missing/report" for path, _, _ in received)
    assert any(message["type"] == "failed" for _, _, message in received)
