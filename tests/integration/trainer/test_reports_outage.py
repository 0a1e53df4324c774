"""Progress that survives the API being down: a real HTTP server refuses the trainer's reports
(503, then connections closed unanswered) for a while in the middle of a tiny job, then takes
them; every metrics and checkpoint report arrives once, in order. A 401 stops the trainer at
once; a service that never comes back stops it after the bounded wait."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from contracts.messages import Checkpoint, Metrics
from contracts.spec import JobSpec
from trainer.loop import train
from trainer.progress import HttpChannel, Progress, ReportRefused, ServiceUnreachable

OUTAGE_SECONDS = 9.0  # longer than a few quick retries (0.5 + 1 + 2 + 4 s) would cover


class Service:
    """Records what it takes; `down_from(type, step)` starts an outage at that report."""

    def __init__(self) -> None:
        self.taken: list[dict[str, Any]] = []
        self.asked = 0  # every report that reached it, answered or not
        self.refused = {"503": 0, "closed": 0}
        self.status_always: int | None = None
        self.trigger: tuple[str, int] | None = None
        self.down_until = 0.0
        self.lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> int | None:
        """The status to answer, or None to close the connection unanswered."""
        with self.lock:
            self.asked += 1
            if self.status_always is not None:
                return self.status_always
            if self.trigger == (body["type"], body.get("step")):
                self.trigger, self.down_until = None, time.monotonic() + OUTAGE_SECONDS
            left = self.down_until - time.monotonic()
            if left > OUTAGE_SECONDS / 2:
                self.refused["503"] += 1
                return 503
            if left > 0:
                self.refused["closed"] += 1
                return None
            self.taken.append(body)
            return 200

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.taken if m["type"] == kind]


@pytest.fixture()
def service() -> Iterator[tuple[Service, str]]:
    state = Service()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status = state.answer(body)
            if status is None:
                self.close_connection = True
                return  # no status line at all: the client sees the connection drop
            data = json.dumps({"action": "continue"} if status == 200 else {"error": {}})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_port}/internal/v1/jobs/x/report"
    finally:
        server.shutdown()


def _spec(make_spec: Callable[..., dict[str, Any]], files: dict[str, str]) -> JobSpec:
    hp = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 1}
    return JobSpec.model_validate(
        make_spec(**files, method={"type": "supervised", "supervised": hp}, quantization="none")
    )


def _channel(url: str, max_wait: float = 60.0) -> HttpChannel:
    return HttpChannel(url, "token", max_wait=max_wait, first_delay=0.05, max_delay=0.2)


def test_reports_sent_while_the_service_is_down_all_arrive_once_in_order(
    service: tuple[Service, str],
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
) -> None:
    state, url = service
    state.trigger = ("metrics", 3)  # down from the 3rd step's metrics, over its checkpoint
    result = train(_spec(make_spec, qa_files), Progress(_channel(url), heartbeat_seconds=0.1))
    assert result.status == "succeeded" and result.step == 8

    assert state.refused["503"] > 0 and state.refused["closed"] > 0  # the outage happened
    assert [m["step"] for m in state.of_type("metrics")] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [(m["step"], m["kind"]) for m in state.of_type("checkpoint")] == [
        (3, "step"), (4, "epoch"), (6, "step"), (8, "epoch"),
    ]  # fmt: skip
    assert len(state.of_type("finished")) == 1
    order = [(m["type"], m.get("step")) for m in state.taken if m["type"] != "heartbeat"]
    assert order.index(("metrics", 3)) < order.index(("checkpoint", 3))
    assert order.index(("checkpoint", 3)) < order.index(("metrics", 4))
    assert order[-1] == ("finished", None)


def test_a_refused_report_stops_the_trainer_without_retrying(
    service: tuple[Service, str],
) -> None:
    state, url = service
    state.status_always = 401  # not the job's current attempt any more
    progress = Progress(_channel(url), heartbeat_seconds=0)
    with pytest.raises(ReportRefused) as refused:
        progress.send(Metrics(step=1, total_steps=2, train_loss=1.0))
    assert refused.value.status_code == 401 and state.asked == 1  # not tried again


def test_a_service_down_for_longer_than_the_wait_stops_the_trainer(
    service: tuple[Service, str],
) -> None:
    state, url = service
    state.status_always = 503
    progress = Progress(_channel(url, max_wait=0.6), heartbeat_seconds=0)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match="took no checkpoint report for 0.6 s"):
        progress.send(Checkpoint(step=3, epoch=1, kind="step", key="k/", url="file:///k/"))
    # Tried again until the wait was over (a lower bound: a slow machine only waits longer).
    assert time.monotonic() - started >= 0.6 and state.asked > 1
