"""Operations with the real processes: the API (`python -m service`) and the scheduler
(`python -m service.scheduler`, its own metrics port) train a job on the small base model;
`/metrics` of both, parsed with prometheus-client's parser, and their JSON log lines show it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, wait_for_port
from tests.e2e.lifecycle_stack import Stack, create_job, start_stack

pytestmark = pytest.mark.slow
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("ops"), base_model_dir, log_format="json") as s:
        # The scheduler again, with a metrics port of its own (the API keeps its /metrics).
        s.stop("scheduler")
        s.env = {**s.env, "WHETSTONE_METRICS_PORT": str(free_port())}
        s.start_scheduler()
        yield s


def scrape(url: str) -> Samples:
    r = httpx.get(url, timeout=10)
    r.raise_for_status()
    return {
        f.name: [(s.labels, s.value) for s in f.samples if not s.name.endswith("_created")]
        for f in text_string_to_metric_families(r.text)
    }


def value(samples: Samples, family: str, sample_suffix: str = "", **labels: str) -> float:
    return sum(
        v for ls, v in samples.get(family, []) if all(ls.get(k) == x for k, x in labels.items())
    )


def json_lines(path: Path) -> list[dict[str, str]]:
    text = path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, f"{path.name} is empty"
    return lines


def test_a_job_shows_in_metrics_and_in_json_logs(stack: Stack) -> None:
    client = stack.client()
    job_id = create_job(client, n_epochs=2, batch_size=2)
    metrics_url = f"http://127.0.0.1:{stack.port}/metrics"
    throughput: list[float] = []
    job = client.fine_tuning.jobs.retrieve(job_id)
    for _ in range(800):  # while it trains, the trainer's tokens/s is a gauge of the API
        time.sleep(0.3)  # the trainer shares the CPUs: leave it room to report in time
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        throughput += [
            v
            for ls, v in scrape(metrics_url).get("whetstone_trainer_tokens_per_second", [])
            if ls["job_id"] == job_id and ls["base_model"] == "whetstone-tiny"
        ]
    assert job.status == "succeeded", stack.logs()
    assert throughput and max(throughput) > 0, "no tokens/s while the job ran"

    api = scrape(metrics_url)
    assert value(api, "whetstone_fine_tuning_jobs", status="succeeded") == 1
    assert value(api, "whetstone_fine_tuning_jobs", status="running") == 0
    assert job.trained_tokens and value(api, "whetstone_trained_tokens") == job.trained_tokens
    # The trainer's `finished` report ends the run in the API process.
    run = [
        (ls, v) for ls, v in api["whetstone_job_run_seconds"] if ls.get("outcome") == "succeeded"
    ]
    assert ({"outcome": "succeeded"}, 1.0) in [(ls, v) for ls, v in run if "le" not in ls]
    assert not any(ls["job_id"] == job_id for ls, _ in api["whetstone_trainer_tokens_per_second"])
    assert value(api, "http_requests", handler="/v1/fine_tuning/jobs", method="POST") >= 1

    # The scheduler started the attempt: the queue wait is in its own metrics.
    port = stack.env["WHETSTONE_METRICS_PORT"]
    wait_for_port(int(port), timeout=10)
    scheduler = scrape(f"http://127.0.0.1:{port}/metrics")
    waits = [v for ls, v in scheduler["whetstone_job_queue_wait_seconds"] if not ls]
    assert waits == [1.0, 1.0] or 1.0 in waits  # _count (and _sum, when under a second)
    assert "whetstone_fine_tuning_jobs" not in scheduler  # the database-wide ones: the API's

    # JSON lines: every line of both processes parses; the lines of a request carry its id
    # and project, those about the job its id.
    api_lines = json_lines(stack.data_dir / "api.log")
    created = [line for line in api_lines if "POST /v1/fine_tuning/jobs HTTP" in line["message"]]
    assert created and created[0]["request_id"].startswith("req_")
    assert created[0]["project"].startswith("proj")
    reports = [
        line for line in api_lines if f"/internal/v1/jobs/{job_id}/report" in line["message"]
    ]
    assert reports and all(line["job_id"] == job_id for line in reports)
    launched = [
        line
        for line in json_lines(stack.data_dir / "scheduler.log")
        if "launched" in line["message"]
    ]
    assert launched and launched[0]["job_id"] == job_id
    assert launched[0]["project"] == created[0]["project"]
