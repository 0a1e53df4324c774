"""Webhook endpoints through the CLI (`whetstone webhooks ...`), the SDK and the `openai`
package, against the real server; then a job cancelled through the API is delivered to the
endpoint the CLI made, signed with the secret the CLI printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from openai.types.webhooks import FineTuningJobCancelledWebhookEvent

from clients.sdk import Whetstone
from service.db.engine import make_engine, make_sessionmaker
from service.webhooks.deliverer import WebhookDeliverer
from tests.e2e import jobdriver
from tests.integration.webhooks.receiver import receiver

from .conftest import Server, create_key

ROOT = Path(__file__).resolve().parents[3]
GOOD = json.dumps({"messages": [{"role": "user", "content": "Capital of Veloria?"},
                                {"role": "assistant", "content": "Quillhaven."}]})  # fmt: skip


def whetstone(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI of this tree (not the installed `whetstone` script), as a person runs it."""
    env = {**server.env, "WHETSTONE_BASE_URL": server.url, "WHETSTONE_API_KEY": server.api_key,
           "COLUMNS": "200", "PYTHONPATH": str(ROOT)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "clients.cli.main", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_cli_creates_lists_and_deletes_endpoints(server: Server) -> None:
    made = whetstone(
        server, "webhooks", "create", "--url", "http://127.0.0.1:9/a",
        "--events", "fine_tuning.job.succeeded,fine_tuning.job.failed",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", made.stdout)
    assert secret is not None, made.stdout
    endpoint_id = re.search(r"we_\w+", made.stdout)
    assert endpoint_id is not None
    listed = whetstone(server, "webhooks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    row = rows[endpoint_id[0]]
    assert row["url"] == "http://127.0.0.1:9/a"
    assert row["event_types"] == ["fine_tuning.job.succeeded", "fine_tuning.job.failed"]
    assert secret[0] not in listed.stdout  # shown once, at creation
    assert whetstone(server, "webhooks", "delete", endpoint_id[0]).returncode == 0
    again = whetstone(server, "webhooks", "list", "--json")
    assert endpoint_id[0] not in again.stdout
    gone = whetstone(server, "webhooks", "delete", endpoint_id[0])
    assert gone.returncode == 1 and "NotFoundError [404]" in gone.stderr


def test_bad_urls_and_event_types_are_400s(server: Server) -> None:
    bad_url = whetstone(server, "webhooks", "create", "--url", "ftp://example.com/x")
    assert bad_url.returncode == 1
    assert "BadRequestError [400]" in bad_url.stderr and "param: url" in bad_url.stderr
    bad_event = whetstone(
        server,
        "webhooks",
        "create",
        "--url",
        "https://example.com/x",
        "--events",
        "batch.completed",
    )
    assert bad_event.returncode == 1
    assert "param: event_types" in bad_event.stderr and "batch.completed" in bad_event.stderr


def test_the_openai_package_manages_endpoints_and_projects_stay_apart(server: Server) -> None:
    mine = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0)
    other = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=create_key(server.env, "other"), max_retries=0
    )
    made = mine.webhooks.create(
        name="ops", url="https://example.com/hook", event_types=["fine_tuning.job.cancelled"]
    )
    assert made.signing_secret.startswith("whsec_") and made.object == "webhook_endpoint"
    assert made.id in [e.id for e in mine.webhooks.list().data]
    assert mine.webhooks.retrieve(made.id).name == "ops"
    assert made.id not in [e.id for e in other.webhooks.list().data]
    with pytest.raises(openai.NotFoundError):
        other.webhooks.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        other.webhooks.delete(made.id)
    deleted = mine.webhooks.delete(made.id)
    assert deleted.deleted and deleted.object == "webhook_endpoint.deleted"


def test_a_job_cancelled_through_the_api_reaches_the_endpoint(
    server: Server, tmp_path: Path
) -> None:
    with receiver() as hook:
        made = whetstone(server, "webhooks", "create", "--url", hook.url, "--json")
        assert made.returncode == 0, made.stderr
        secret = json.loads(made.stdout)["signing_secret"]
        with Whetstone(base_url=server.url, api_key=server.api_key) as client:
            path = tmp_path / "train.jsonl"
            path.write_text(f"{GOOD}\n" * 10)
            file_id = client.files.create(file=path).id
            job = client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=file_id)
            client.fine_tuning.jobs.cancel(job.id)
        settings = jobdriver.server_settings(server).model_copy(
            update={"webhook_allow_private_urls": True}  # the receiver is on 127.0.0.1
        )
        engine = make_engine(settings.resolved_database_url)
        deliverer = WebhookDeliverer(settings, make_sessionmaker(engine))
        try:
            deliverer.deliver_due()
        finally:
            deliverer.close()
            engine.dispose()
        (got,) = hook.wait_for(1, timeout=5)
    event = openai.OpenAI(api_key="unused").webhooks.unwrap(got.body, got.headers, secret=secret)
    assert isinstance(event, FineTuningJobCancelledWebhookEvent) and event.data.id == job.id
