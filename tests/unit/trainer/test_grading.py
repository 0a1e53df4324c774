"""The reinforcement trainer's grading side: model graders reach the service's grading route
of the attempt with its token, a trainer without a service scores them 0 with the reason,
and the GRPO pieces that need no model (advantages, the template's reasoning switch)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from contracts.graders.run import grade
from contracts.graders.schema import ScoreModelGrader
from contracts.spec import JobSpec
from trainer.grading import context, failure_summary, sum_up

GRADER = ScoreModelGrader.model_validate({
    "type": "score_model", "name": "judge", "model": "whetstone-tiny",
    "input": [{"role": "user", "content": "Score {{sample.output_text}} against {{item.answer}}"}],
})  # fmt: skip


def _spec() -> JobSpec:
    return JobSpec.model_validate({
        "job_id": "ftjob-grading", "base_model": {"name": "t", "path": "/nowhere"},
        "training_file": "file:///nowhere.jsonl", "output": "file:///nowhere/",
        "method": {"type": "reinforcement", "grader": GRADER.model_dump()},
    })  # fmt: skip


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
    ctx = context(_spec(), report_url, "attempt-token")
    result = grade(GRADER, "Yes.", {"answer": "Yes."}, ctx)

    assert not result.errors.any(), result
    assert result.reward == 0.75
    assert seen[0]["path"] == "/internal/v1/jobs/ftjob-grading/grader/chat"
    assert seen[0]["auth"] == "Bearer attempt-token"
    assert seen[0]["body"]["model"] == "whetstone-tiny"
    assert seen[0]["body"]["messages"][0]["content"] == "Score Yes. against Yes."


def test_without_a_service_a_model_grader_scores_zero_and_says_why() -> None:
    ctx = context(_spec(), None, None)
    grades = [grade(GRADER, text, {"answer": "Yes."}, ctx) for text in ("Yes.", "No.")]
    rewards = sum_up(GRADER, grades)

    assert rewards.rewards == [0.0, 0.0] and len(rewards.failed) == 2
    summary = failure_summary(rewards, "Step 1")
    assert summary is not None and summary.startswith(
        "Step 1: the grader failed on 2 of 2 samples, each scored 0 "
        "(first: model_grader_server_error: No grading model is reachable here."
    )


def test_group_normalised_advantages() -> None:
    pytest.importorskip("torch")
    from trainer.grpo import advantages

    values = advantages([1.0, 0.0, 0.0, 1.0])
    assert values == pytest.approx([0.866, -0.866, -0.866, 0.866], abs=1e-3)
    assert sum(values) == pytest.approx(0.0)
    assert advantages([0.5, 0.5, 0.5]) == [0.0, 0.0, 0.0]  # nothing to prefer


@pytest.mark.parametrize(
    ("template", "effort", "expected"),
    [
        ("{% if enable_thinking %}<think>{% endif %}", "low", {"enable_thinking": False}),
        ("{% if enable_thinking %}<think>{% endif %}", "high", {"enable_thinking": True}),
        ("{{ reasoning_effort }}", "medium", {"reasoning_effort": "medium"}),
        ("{{ reasoning_effort }}", "default", {}),
        ("{{ messages }}", "low", {}),
    ],
)
def test_reasoning_effort_becomes_the_templates_switch(
    template: str, effort: str, expected: dict[str, Any]
) -> None:
    pytest.importorskip("torch")
    from trainer.grpo import reasoning_kwargs

    assert reasoning_kwargs(template, effort) == expected
