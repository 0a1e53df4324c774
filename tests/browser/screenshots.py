"""Screenshots of every dashboard page into docs/screenshots/, for the README and docs/ui.md.

Re-run with (not part of the suite: the file name does not start with `test_`):

    .venv/bin/python -m pytest tests/browser/screenshots.py -p no:cacheprovider -q

It uses the suite's fixtures: the session's real vLLM (`vllm_server`), a server wired to it,
a LoRA trained here with peft on the Veloria questions (seconds on a CPU) recorded as a
succeeded job, and stand-in jobs with `metrics` events for the charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts.local_store import LocalStore
from tests.browser import standins
from tests.browser.conftest import log_in, new_page
from tests.serving_stack import (
    ANSWERS_A,
    QUESTIONS,
    create_job,
    start_chat_server,
    succeed_job,
    train_qa_adapter,
)
from tests.vllm_fixture import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.mark.usefixtures("chart_library")
def test_screenshots(
    browser: Any, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("shots")
    with start_chat_server(vllm_server, tmp / "server") as server:
        data_dir = server.data_dir
        store_url = vllm_server.store_url
        assert isinstance(vllm_server.store, LocalStore) or store_url
        # a job with a loss curve, checkpoints and a result file
        done = standins.create_job(server.url, server.key_a, "support")
        standins.start_running(data_dir, done, standins.STEPS)
        standins.succeed(data_dir, done, store_url)
        # a running one
        live = standins.create_job(server.url, server.key_a, "live")
        standins.start_running(data_dir, live, 17)
        # the model to chat with: a real LoRA that learnt the Veloria answers
        job_id = create_job(server.client(), ANSWERS_A, tmp, suffix="veloria")
        adapter = train_qa_adapter(vllm_server.base_model_dir, ANSWERS_A, tmp / "adapter")
        tuned = succeed_job(server, vllm_server, job_id, adapter, step=80)

        page = new_page(browser, 1280, 860)
        log_in(page, server.url, server.key_a)
        page.wait_for_selector(f"tr[data-job='{done}']")
        page.screenshot(path=OUT / "jobs.png")

        page.goto(f"{server.url}/ui/#/jobs/{done}")
        page.wait_for_selector("#loss-chart[data-points]")
        page.wait_for_selector("#events li:has-text('Step 40/40')")
        page.screenshot(path=OUT / "job.png", full_page=True)

        page.goto(f"{server.url}/ui/#/new")
        page.wait_for_selector("#base-model option[value=whetstone-tiny]", state="attached")
        bad = standins.dataset(3) + b'{"messages": [{"role": "user", "content": "hi"}]\n'
        page.set_input_files(
            "#training-file", {"name": "support.jsonl", "mimeType": "text/plain", "buffer": bad}
        )
        page.fill("#n-epochs", "3")
        page.fill("#suffix", "support")
        page.click("#start")
        page.wait_for_selector("#new-job-error .error")
        page.screenshot(path=OUT / "new-job.png", full_page=True)

        page.goto(f"{server.url}/ui/#/playground?model={tuned.name}")
        page.wait_for_selector(f"#model-a option[value='{tuned.name}']:checked", state="attached")
        page.fill("#max-tokens", "24")
        page.fill("#prompt", QUESTIONS[0])
        page.click("#send")
        page.wait_for_selector("#transcript-a .msg.assistant[data-done]", timeout=90_000)
        page.wait_for_selector("#transcript-b .msg.assistant[data-done]", timeout=90_000)
        page.screenshot(path=OUT / "playground.png", full_page=True)

        page.goto(f"{server.url}/ui/#/files")
        page.wait_for_selector("#files-table tr[data-file]")
        page.screenshot(path=OUT / "files.png", full_page=True)

        page.goto(f"{server.url}/ui/#/models")
        page.wait_for_selector("#models-table tr[data-model]")
        page.screenshot(path=OUT / "models.png", full_page=True)
        page.context.close()

        phone = new_page(browser, 390, 844)
        log_in(phone, server.url, server.key_a, f"ui/#/jobs/{live}")
        phone.wait_for_selector("#loss-chart[data-points]")
        phone.screenshot(path=OUT / "job-phone.png", full_page=True)
        phone.context.close()
