"""A model grader of the reinforcement trainer reaches the service's grading route of its
attempt over HTTP, with the attempt's token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from contracts.graders.run import grade
from tests.unit.trainer.test_grading import GRADER, spec
from trainer.grading import context


@pytest.fixture()
def grading_route() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the service's `/internal/v1/jobs/{id}/grader/chat` route (written in
    the service, not on this side): a real HTTP server answering an OpenAI chat completion
    whose content is the score, recording each request's path, token and body."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
            answer = {
                "model": body["model"],
                "choices": [{"message": {"role": "assistant", "content": '{"result": 0.75}'}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_model_grader_reaches_the_grading_route_of_the_attempt(
    grading_route: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = grading_route
    report_url = f"{url}/internal/v1/jobs/ftjob-grading/report"
    ctx = context(spec(), report_url, "attempt-token")
    result = grade(GRADER, "Yes.", {"answer": "Yes."}, ctx)

    assert not result.errors.any(), result
    assert result.reward == 0.75
    assert seen[0]["path"] == "/internal/v1/jobs/ftjob-grading/grader/chat"
    assert seen[0]["auth"] == "Bearer attempt-token"
    assert seen[0]["body"]["model"] == "whetstone-tiny"
    assert seen[0]["body"]["messages"][0]["content"] == "Score Yes. against Yes."
