"""`/v1/fine_tuning/alpha/graders/run` and `/validate`, driven by the `openai` package against
the app in-process, every answer checked against OpenAI's schemas. Model graders talk to a
stand-in OpenAI-compatible endpoint (`WHETSTONE_GRADER_MODELS_URL`) that records requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.unit.service.conftest import create_key
from tests.unit.service.test_openai_schemas import assert_matches

CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}
SIMILARITY = {
    "type": "text_similarity",
    "name": "close",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "evaluation_metric": "fuzzy_match",
}
PYTHON = {
    "type": "python",
    "name": "code",
    "source": "def grade(sample, item):\n"
    "    print('checking')\n"
    "    return 1.0 if sample['output_text'] == item['label'] else 0.0\n",
}
SCORE = {
    "type": "score_model",
    "name": "judge",
    "model": "judge",
    "input": [
        {"role": "user", "content": "Answer: {{sample.output_text}}; reference: {{item.label}}"}
    ],
    "sampling_params": {"temperature": 0},
}
LABEL = {
    "type": "label_model",
    "name": "tone",
    "model": "judge",
    "input": [{"role": "user", "content": "{{sample.output_text}}"}],
    "labels": ["good", "bad"],
    "passing_labels": ["good"],
}
MULTI = {
    "type": "multi",
    "name": "both",
    "graders": {"exact": CHECK, "close": SIMILARITY},
    "calculate_output": "(exact + close) / 2",
}


class StandIn(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint: a score, a label, embeddings; it records each body."""

    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        StandIn.bodies.append(
            {"path": self.path, "auth": self.headers.get("authorization"), **body}
        )
        if self.path.endswith("/embeddings"):
            vectors = [[1.0, 0.0] if text == "Paris" else [0.0, 1.0] for text in body["input"]]
            answer: dict[str, Any] = {
                "data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]
            }
        else:
            schema = body["response_format"]["json_schema"]["schema"]["properties"]
            content = '{"label": "good"}' if "label" in schema else '{"result": 0.8}'
            answer = {
                "model": "judge-2026",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26},
            }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StandIn.bodies = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def http(tmp_path: Path, stand_in: str) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        grader_models_url=stand_in,
        grader_models_api_key="sk-grading",
        grader_models=["judge"],
        grader_embedding_model="embed",
        grader_python_wall_seconds=30,
        grader_python_cpu_seconds=2,
        grader_python_output_kb=64,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture()
def client(http: TestClient) -> openai.OpenAI:
    key = create_key(http, "alpha")
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0
    )


def _run(client: openai.OpenAI, grader: dict[str, Any], sample: str, item: Any) -> dict[str, Any]:
    """Run through the SDK; the raw JSON, checked against `RunGraderResponse`."""
    raw = client.fine_tuning.alpha.graders.with_raw_response.run(
        grader=grader,  # type: ignore[arg-type]
        model_sample=sample,
        item=item,
    )
    answer: dict[str, Any] = raw.http_response.json()
    assert_matches("RunGraderResponse", answer)
    parsed = raw.parse()  # and the SDK reads it
    assert parsed.reward == answer["reward"]
    return answer


@pytest.mark.parametrize(
    ("grader", "sample", "reward"),
    [
        (CHECK, "Paris", 1.0),
        (CHECK, "Lyon", 0.0),
        ({**SIMILARITY, "evaluation_metric": "rouge_l"}, "Paris", 1.0),
        ({**SIMILARITY, "evaluation_metric": "cosine"}, "Paris", 1.0),
        ({**SIMILARITY, "evaluation_metric": "cosine"}, "Lyon", 0.0),
        (PYTHON, "Paris", 1.0),
        (SCORE, "Paris", 0.8),
        (LABEL, "Paris", 1.0),
        (MULTI, "Paris", 1.0),
    ],
)
def test_run_each_grader_type(
    client: openai.OpenAI, grader: dict[str, Any], sample: str, reward: float
) -> None:
    answer = _run(client, grader, sample, {"label": "Paris"})
    assert answer["reward"] == pytest.approx(reward)
    assert answer["metadata"]["name"] == grader["name"]
    assert answer["metadata"]["type"] == grader["type"]
    assert not any(v is True for v in answer["metadata"]["errors"].values())


def test_model_graders_report_tokens_per_model_and_reach_the_endpoint(
    client: openai.OpenAI,
) -> None:
    answer = _run(client, SCORE, "Paris", {"label": "Paris"})
    usage = {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26, "cached_tokens": 0}
    assert answer["model_grader_token_usage_per_model"] == {"judge-2026": usage}
    assert answer["metadata"]["token_usage"] == 26
    assert answer["metadata"]["sampled_model_name"] == "judge-2026"
    sent = StandIn.bodies[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-grading"
    assert sent["messages"] == [{"role": "user", "content": "Answer: Paris; reference: Paris"}]
    assert sent["temperature"] == 0


def test_multi_reports_sub_rewards(client: openai.OpenAI) -> None:
    answer = _run(client, MULTI, "Pariss", {"label": "Paris"})
    assert answer["sub_rewards"]["exact"] == 0.0
    assert 0.4 < answer["sub_rewards"]["close"] < 1.0
    assert answer["reward"] == pytest.approx(answer["sub_rewards"]["close"] / 2)


def test_validate_answers_the_grader(client: openai.OpenAI) -> None:
    # A multi grader as OpenAI's spec has it: one grader, named in the formula by its name.
    multi = {"type": "multi", "name": "one", "graders": CHECK, "calculate_output": "exact * 2"}
    for grader in (CHECK, SIMILARITY, PYTHON, SCORE, multi, MULTI):
        raw = client.fine_tuning.alpha.graders.with_raw_response.validate(grader=grader)  # type: ignore[arg-type]
        answer = raw.http_response.json()
        assert answer == {"grader": grader}
        if grader is not MULTI:  # the guide's keyed `graders` is not in the spec's schema
            assert_matches("ValidateGraderResponse", answer)


@pytest.mark.parametrize(
    ("grader", "param", "said"),
    [
        (
            {**CHECK, "reference": "{{item.label}} {{sample.outputtext}}"},
            "grader.reference",
            "sample.outputtext",
        ),
        (
            {**MULTI, "calculate_output": "exact +* close"},
            "grader.calculate_output",
            "does not parse",
        ),
        ({**MULTI, "calculate_output": "exact + nope"}, "grader.calculate_output", "`nope`"),
        ({**PYTHON, "source": "def score(s, i): return 1"}, "grader.source", "define `grade"),
        ({**SCORE, "model": "gpt-4o"}, "grader.model", "not served here"),
        (
            {**MULTI, "graders": {"j": {**LABEL, "model": "gpt-4o"}}, "calculate_output": "j"},
            "grader.graders.j.model",
            "not served",
        ),
    ],
)
def test_a_bad_grader_is_a_400_naming_the_field(
    client: openai.OpenAI, grader: dict[str, Any], param: str, said: str
) -> None:
    for call in (
        lambda: client.fine_tuning.alpha.graders.validate(grader=grader),  # type: ignore[arg-type]
        lambda: client.fine_tuning.alpha.graders.run(grader=grader, model_sample="x"),  # type: ignore[arg-type]
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["param"] == param and said in error["message"], error


def test_cosine_without_an_embedding_model_is_a_400(tmp_path: Path) -> None:
    with TestClient(
        create_app(Settings(data_dir=tmp_path / "d")), raise_server_exceptions=False
    ) as http:
        key = create_key(http, "alpha")
        reply = http.post(
            "/v1/fine_tuning/alpha/graders/validate",
            json={"grader": {**SIMILARITY, "evaluation_metric": "cosine"}},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "grader.evaluation_metric"
    assert "embedding model" in reply.json()["error"]["message"]


def test_a_served_model_is_asked_through_the_relay(client: openai.OpenAI) -> None:
    """The built-in base model is served here; with no vLLM up, the grader says so."""
    answer = _run(client, {**SCORE, "model": "whetstone-tiny"}, "Paris", {"label": "Paris"})
    errors = answer["metadata"]["errors"]
    assert answer["reward"] == 0.0 and errors["model_grader_server_error"] is True
    assert "whetstone-tiny" in errors["model_grader_server_error_details"]


def test_no_key_is_a_401(http: TestClient) -> None:
    for path in ("run", "validate"):
        reply = http.post(
            f"/v1/fine_tuning/alpha/graders/{path}", json={"grader": CHECK, "model_sample": "x"}
        )
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    bad = openai.OpenAI(
        base_url="http://testserver/v1", api_key="sk-nope", http_client=http, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        bad.fine_tuning.alpha.graders.run(grader=CHECK, model_sample="x")  # type: ignore[arg-type]


def test_an_oversized_source_is_a_400(client: openai.OpenAI) -> None:
    source = PYTHON["source"] + "#" * (300 * 1024)
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.alpha.graders.run(grader={**PYTHON, "source": source}, model_sample="x")  # type: ignore[arg-type]
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "grader.source"


HOSTILE = {
    "socket": "import socket\n"
    "def grade(s, i):\n    socket.create_connection(('1.1.1.1', 443), timeout=2)\n    return 1.0\n",
    "write": "def grade(s, i):\n    open('/usr/lib/owned', 'w').write('x')\n    return 1.0\n",
    "environ": "import os\n"
    "def grade(s, i):\n    assert not os.environ.get('WHETSTONE_DATA_DIR'), 'leaked'\n"
    "    raise RuntimeError(sorted(os.environ))\n",
    "fork": "import os\ndef grade(s, i):\n    while True:\n        os.fork()\n",
    "loop": "def grade(s, i):\n    while True:\n        pass\n",
    "print": "def grade(s, i):\n    print('x' * (100 << 20))\n    return 1.0\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_python_graders_are_contained_and_reported(
    client: openai.OpenAI, http: TestClient, name: str
) -> None:
    answer = _run(client, {**PYTHON, "source": HOSTILE[name]}, "Paris", {"label": "Paris"})
    errors = answer["metadata"]["errors"]
    assert answer["reward"] == 0.0
    assert errors["python_grader_runtime_error"] is True, errors
    assert errors["python_grader_runtime_error_details"]
    assert errors["python_grader_server_error"] is False
    # The service is unaffected: it answers, and grades the next sample.
    assert http.get("/healthz").status_code == 200
    assert _run(client, PYTHON, "Paris", {"label": "Paris"})["reward"] == 1.0


def test_a_served_model_answers_through_the_relay(tmp_path: Path, stand_in: str) -> None:
    """A base model of this server, its vLLM played by the stand-in: the grader's request goes
    through the same relay as `/v1/chat/completions`."""
    vllm = stand_in.removesuffix("/v1")
    settings = Settings(data_dir=tmp_path / "d", vllm_urls={"whetstone-tiny": vllm})
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        client = openai.OpenAI(
            base_url="http://testserver/v1",
            api_key=create_key(http, "alpha"),
            http_client=http,
            max_retries=0,
        )
        answer = _run(client, {**SCORE, "model": "whetstone-tiny"}, "Paris", {"label": "Paris"})
    assert answer["reward"] == pytest.approx(0.8)
    assert answer["model_grader_token_usage_per_model"]["judge-2026"]["total_tokens"] == 26
    sent = StandIn.bodies[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "whetstone-tiny"
    assert sent["auth"] is None  # no grading endpoint key on the way to vLLM
