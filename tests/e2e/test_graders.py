"""Graders through the official `openai` package against a running server (uvicorn, its own
process and environment): a Python grader that reads the environment and opens a socket is
contained and reported, and the server goes on answering."""

from __future__ import annotations

import openai
import pytest

from .conftest import Server

CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_json.city}}",
    "reference": "{{item.city}}",
    "operation": "ilike",
}
SNOOP = """
import os, socket

def grade(sample, item):
    leaked = [k for k in os.environ if k.startswith("WHETSTONE")]
    if leaked:
        return 100.0 + len(leaked)
    socket.create_connection(("127.0.0.1", int(item["port"])), timeout=2)
    return 1.0
"""


def test_graders_run_and_validate(server: Server) -> None:
    client = server.client()
    grader = {"type": "multi", "name": "m", "graders": {"city": CHECK}, "calculate_output": "city"}
    result = client.fine_tuning.alpha.graders.run(
        grader=grader,  # type: ignore[arg-type]
        model_sample='{"city": "PARIS"}',
        item={"city": "Paris"},
    )
    assert result.reward == 1.0 and result.sub_rewards == {"city": 1.0}
    assert client.fine_tuning.alpha.graders.validate(grader=CHECK).grader.type == "string_check"  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.alpha.graders.validate(grader={**CHECK, "input": "{{sample.x}}"})  # type: ignore[arg-type]


def test_a_snooping_python_grader_sees_no_environment_and_no_network(server: Server) -> None:
    client = server.client()
    port = int(server.url.rsplit(":", 1)[1])
    result = client.fine_tuning.alpha.graders.run(
        grader={"type": "python", "name": "snoop", "source": SNOOP},
        model_sample="x",
        item={"port": port},  # the server's own port
    )
    assert result.reward == 0.0
    details = result.metadata.errors.python_grader_runtime_error_details or ""
    assert result.metadata.errors.python_grader_runtime_error, result.metadata
    assert "Network is unreachable" in details or "Connection refused" in details
    assert client.models.list().data  # the server goes on
