"""The web dashboard in a real headless chromium, used as a person would: sign in with a
key, read the jobs, watch the loss chart, cancel a job, upload a bad file, and see nothing of
another project."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import standins
from tests.browser.conftest import Dashboard, log_in, new_page

pytestmark = pytest.mark.slow


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    p = new_page(browser)
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    p.context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def canvas_ink(page: Any, selector: str) -> int:
    """How many pixels of the canvas are drawn on (not transparent)."""
    return int(
        page.eval_on_selector(
            selector,
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                     let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""",
        )
    )


def test_root_redirects_and_a_bad_key_shows_the_apis_message(
    dashboard: Dashboard, page: Any
) -> None:
    page.goto(dashboard.url + "/")
    assert page.url == dashboard.url + "/ui/"
    page.fill("#api-key", "sk-whet-not-a-key")
    page.click("#login button[type=submit]")
    assert "Incorrect API key provided" in page.inner_text("#login-error .error")
    assert page.evaluate("sessionStorage.length") == 0
    assert "sk-whet" not in page.url


@pytest.mark.usefixtures("chart_library")
def test_jobs_list_and_the_job_page_with_its_loss_chart(dashboard: Dashboard, page: Any) -> None:
    log_in(page, dashboard.url, dashboard.server.key_a)
    assert page.evaluate("sessionStorage.getItem('whetstone.apiKey')") == dashboard.server.key_a
    row = page.wait_for_selector(f"tr[data-job='{dashboard.succeeded_job}']")
    assert "succeeded" in row.inner_text()
    assert "whetstone-tiny" in row.inner_text()
    assert "1,120" in row.inner_text()  # trained tokens
    assert page.is_visible(f"tr[data-job='{dashboard.running_job}'] [data-status=running]")

    page.click(f"a[href='#/jobs/{dashboard.succeeded_job}']")
    page.wait_for_selector("#loss-chart[data-points]")
    # 40 training points and one validation point every 5 steps, drawn on the canvas
    n_valid = standins.STEPS // standins.VALID_EVERY
    assert page.get_attribute("#loss-chart", "data-points") == str(standins.STEPS + n_valid)
    assert page.evaluate("Chart.getChart('loss-chart').data.datasets[0].data.length") == 40
    assert canvas_ink(page, "#loss-chart") > 2000
    # checkpoints, each with "chat with this"; events; hyperparameters; result file
    links = page.eval_on_selector_all("#checkpoints a.chat-link", "as => as.map(a => a.hash)")
    assert links == [
        f"#/playground?model={dashboard.tuned_model}:ckpt-step-{s}".replace(":", "%3A")
        for s in (40, 20)
    ]
    assert "The job has successfully completed" in page.inner_text("#events")
    assert "n_epochs" in page.inner_text("#hyperparameters")
    with page.expect_download() as download:
        page.click("#result-files button.download")
    assert download.value.path().read_text().startswith("step,train_loss")
    assert page.is_disabled("#cancel") and page.is_disabled("#pause")

    page.click("#checkpoints a.chat-link")  # opens the playground with that model
    page.wait_for_selector("#model-a option:checked", state="attached")
    assert (
        page.eval_on_selector("#model-a", "s => s.value") == f"{dashboard.tuned_model}:ckpt-step-40"
    )


@pytest.mark.usefixtures("chart_library")
def test_the_chart_of_a_running_job_updates_while_it_runs(dashboard: Dashboard, page: Any) -> None:
    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{dashboard.running_job}")
    page.wait_for_selector("#loss-chart[data-points='14']")  # 12 train, 2 valid
    standins.add_steps(dashboard.server.data_dir, dashboard.running_job, range(13, 21))
    page.wait_for_selector("#loss-chart[data-points='24']", timeout=10_000)  # polled in ~3 s


@pytest.mark.usefixtures("chart_library")
def test_a_reinforcement_job_charts_its_rewards(dashboard: Dashboard, page: Any) -> None:
    from service.settings import Settings

    data_dir = dashboard.server.data_dir
    store_url = Settings(data_dir=data_dir).resolved_object_store_url
    job_id = standins.create_rft_job(dashboard.url, dashboard.server.key_a, 20, data_dir, store_url)
    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{job_id}")
    page.wait_for_selector("#loss-chart[data-kind=reward][data-points='24']")  # 20 + 4 valid
    assert page.evaluate("Chart.getChart('loss-chart').data.datasets.map(d => d.label)") == [
        "train reward", "validation reward",
    ]  # fmt: skip
    assert page.evaluate("Chart.getChart('loss-chart').data.datasets[0].data.at(-1).y") == (
        standins.reward(20)
    )
    assert canvas_ink(page, "#loss-chart") > 1000
    assert "Reward" in page.inner_text("h2:near(#loss-chart)")
    assert "reward" in page.inner_text("#chart-note")
    checkpoints = page.inner_text("#checkpoints")
    assert "train reward" in checkpoints.lower() and f"{standins.reward(20):.4f}" in checkpoints
    assert "grader" in page.inner_text("#hyperparameters")
    assert "eval_interval" in page.inner_text("#hyperparameters")


def test_cancel_a_running_job_with_the_button(dashboard: Dashboard, page: Any) -> None:
    job_id = standins.create_job(dashboard.url, dashboard.server.key_a, "cancel-me")
    standins.start_running(dashboard.server.data_dir, job_id, 5)
    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{job_id}")
    page.wait_for_selector("#job-summary [data-status=running]")
    assert page.is_enabled("#pause")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector("#job-summary [data-status=cancelled]")
    assert page.is_disabled("#cancel")
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        assert http.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "cancelled"


def test_pause_and_resume_with_the_buttons(dashboard: Dashboard, page: Any) -> None:
    job_id = standins.create_job(dashboard.url, dashboard.server.key_a, "pause-me")
    standins.start_running(dashboard.server.data_dir, job_id, 3)
    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{job_id}")
    page.wait_for_selector("#job-summary [data-status=running]")
    assert page.is_disabled("#resume")
    page.click("#pause")
    page.wait_for_selector("#job-summary [data-status=pausing]")  # until its trainer stops
    assert page.is_disabled("#pause") and page.is_disabled("#resume")
    standins.attempt_ended(dashboard.server.data_dir, job_id)
    page.wait_for_selector("#job-summary [data-status=paused]")
    assert page.is_disabled("#pause") and page.is_enabled("#resume")
    page.click("#resume")
    page.wait_for_selector("#job-summary [data-status=queued]")
    page.wait_for_selector("#events li:has-text('Fine-tuning job resumed')")


def test_a_bad_file_shows_the_per_line_errors_and_nothing_is_stored(
    dashboard: Dashboard, page: Any
) -> None:
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        before = len(http.get("/v1/files?limit=100").json()["data"])
    log_in(page, dashboard.url, dashboard.server.key_a, "ui/#/new")
    bad = standins.dataset(2) + b"not json\n" + b'{"messages": []}\n'
    page.set_input_files(
        "#training-file", {"name": "bad.jsonl", "mimeType": "application/jsonl", "buffer": bad}
    )
    # checked in the browser first...
    assert "line 3: invalid JSON" in page.inner_text("#training-file-check .notice")
    page.wait_for_selector("#base-model option[value=whetstone-tiny]", state="attached")
    page.click("#start")
    # ...and the API's own 400, naming the lines
    message = page.inner_text("#new-job-error .error")
    assert "Invalid file format for fine-tuning" in message
    assert "line 3: invalid JSON" in message and "line 4:" in message
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        assert len(http.get("/v1/files?limit=100").json()["data"]) == before


def test_a_new_job_from_the_form_lands_on_its_page(dashboard: Dashboard, page: Any) -> None:
    log_in(page, dashboard.url, dashboard.server.key_a, "ui/#/new")
    page.set_input_files(
        "#training-file",
        {"name": "qa.jsonl", "mimeType": "application/jsonl", "buffer": standins.dataset()},
    )
    page.wait_for_selector("#base-model option[value=whetstone-tiny]", state="attached")
    page.select_option("#base-model", "whetstone-tiny")
    page.fill("#n-epochs", "3")
    page.fill("#lr-multiplier", "2")
    page.fill("#suffix", "from-ui")
    page.click("#start")
    page.wait_for_url("**/ui/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[1]
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        job = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 3
    assert job["method"]["supervised"]["hyperparameters"]["learning_rate_multiplier"] == 2
    assert ":from-ui:" in job["fine_tuned_model"] if job["fine_tuned_model"] else True
    page.wait_for_selector("#job-summary [data-status]")


def test_a_new_job_from_a_file_uploaded_before(dashboard: Dashboard, page: Any) -> None:
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        file_id = http.post(
            "/v1/files",
            files={"file": ("old.jsonl", standins.dataset())},
            data={"purpose": "fine-tune"},
        ).json()["id"]
    log_in(page, dashboard.url, dashboard.server.key_a, "ui/#/new")
    page.wait_for_selector(f"#training-existing option[value='{file_id}']", state="attached")
    page.select_option("#training-existing", file_id)
    page.click("#start")
    page.wait_for_url("**/ui/#/jobs/ftjob-*")
    page.wait_for_selector(f"#job-summary dd:has-text('{file_id}')")


def test_another_projects_key_sees_none_of_it(dashboard: Dashboard, page: Any) -> None:
    log_in(page, dashboard.url, dashboard.server.key_b)
    page.wait_for_selector("#jobs-table td.muted")
    assert "No jobs yet" in page.inner_text("#jobs-table")
    page.goto(f"{dashboard.url}/ui/#/jobs/{dashboard.succeeded_job}")
    error = page.wait_for_selector("main .error").inner_text()  # as a missing id answers
    assert dashboard.succeeded_job in error and "ft:" not in page.inner_text("main")
    page.goto(f"{dashboard.url}/ui/#/models")
    page.wait_for_selector("#models-table tr[data-model]")
    models = page.eval_on_selector_all(
        "#models-table tr[data-model]", "rs => rs.map(r => r.dataset.model)"
    )
    assert models == ["whetstone-tiny"]
    page.goto(f"{dashboard.url}/ui/#/files")
    page.wait_for_selector("#files-table td.muted")
    assert "No files yet" in page.inner_text("#files-table")


def test_without_the_chart_library_the_page_says_so(dashboard: Dashboard, page: Any) -> None:
    page.route("**/ui/vendor/**", lambda route: route.fulfill(status=404, body="not found"))
    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{dashboard.succeeded_job}")
    assert "chart is unavailable" in page.inner_text("#chart-unavailable")
    page.wait_for_selector("#events li:has-text('Step 40/40')")  # the rest of the page works


@pytest.mark.usefixtures("chart_library")
def test_the_job_page_fits_a_phone(dashboard: Dashboard, browser: Any) -> None:
    phone = new_page(browser, width=390, height=844)
    try:
        log_in(phone, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{dashboard.succeeded_job}")
        phone.wait_for_selector("#loss-chart[data-points]")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert canvas_ink(phone, "#loss-chart") > 1000
    finally:
        phone.context.close()


def test_files_page_deletes_a_file(dashboard: Dashboard, page: Any) -> None:
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        file_id = http.post(
            "/v1/files",
            files={"file": ("x.jsonl", standins.dataset(1))},
            data={"purpose": "fine-tune"},
        ).json()["id"]
    log_in(page, dashboard.url, dashboard.server.key_a, "ui/#/files")
    page.wait_for_selector(f"tr[data-file='{file_id}']")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"tr[data-file='{file_id}'] button.delete")
    page.wait_for_selector(f"tr[data-file='{file_id}']", state="detached")
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        assert http.get(f"/v1/files/{file_id}").status_code == 404


def test_the_job_page_shows_the_evaluation_report(dashboard: Dashboard, page: Any) -> None:
    from service.settings import Settings

    data_dir = dashboard.server.data_dir
    store_url = Settings(data_dir=data_dir).resolved_object_store_url
    job_id = standins.create_job(dashboard.url, dashboard.server.key_a, "graded")
    standins.start_running(data_dir, job_id, standins.STEPS)
    model = standins.succeed(data_dir, job_id, store_url)
    standins.evaluated(data_dir, job_id, store_url)

    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{job_id}")
    card = page.wait_for_selector("#evaluation:not([hidden]) tr[data-kind=fine_tuned]")
    assert model in card.inner_text() and "7/8" in card.inner_text()
    assert "87.5%" in card.inner_text() and "0.42" in card.inner_text()
    assert "0/8" in page.inner_text("#evaluation tr[data-kind=base]")
    text = page.inner_text("#evaluation")
    assert "8 examples from the validation file" in text and "12 s" in text
    assert "Highest final loss: line 8 (3.25)" in text
    # Both result files download under their own names.
    names = []
    for button in page.query_selector_all("#result-files button.download"):
        with page.expect_download() as download:
            button.click()
        names.append(download.value.suggested_filename)
    assert names == ["step_metrics.csv", "eval_report.json"]
    with page.expect_download() as download:
        page.query_selector_all("#result-files button.download")[1].click()
    assert '"kind": "fine_tuned"' in download.value.path().read_text()


def test_the_evaluation_shows_the_flips_against_the_source_model(
    dashboard: Dashboard, page: Any
) -> None:
    from service.settings import Settings

    data_dir = dashboard.server.data_dir
    store_url = Settings(data_dir=data_dir).resolved_object_store_url
    job_id = standins.create_job(dashboard.url, dashboard.server.key_a, "flipped")
    standins.start_running(data_dir, job_id, standins.STEPS)
    standins.succeed(data_dir, job_id, store_url)
    # The source got the last question right (the fine-tuned model did not), the first wrong.
    source = ["No idea."] + [a for _, a in standins.QA[1:]]
    standins.evaluated(data_dir, job_id, store_url, source=source)

    log_in(page, dashboard.url, dashboard.server.key_a, f"ui/#/jobs/{job_id}")
    flips = page.wait_for_selector("#eval-flips")
    assert "Against the source model: 1 lost, 1 gained" in flips.inner_text()
    lost = page.inner_text("#eval-flips tr[data-flip=lost]")
    assert standins.QA[-1][1] in lost and "I do not know." in lost
    gained = page.inner_text("#eval-flips tr[data-flip=gained]")
    assert "No idea." in gained and standins.QA[0][1] in gained


def test_an_alias_is_listed_offered_in_the_playground_and_deleted_alone(
    dashboard: Dashboard, page: Any
) -> None:
    from service.settings import Settings

    data_dir = dashboard.server.data_dir
    store_url = Settings(data_dir=data_dir).resolved_object_store_url
    job_id = standins.create_job(dashboard.url, dashboard.server.key_a, "aliased")
    standins.start_running(data_dir, job_id, standins.STEPS)
    model = standins.succeed(data_dir, job_id, store_url)
    alias = "ft:gpt-4o-mini-2024-07-18:acme::AbC123"
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        made = http.post("/v1/models/aliases", json={"name": alias, "model": model})
        assert made.status_code == 200, made.text

    log_in(page, dashboard.url, dashboard.server.key_a, "ui/#/models")
    row = page.wait_for_selector(f"tr[data-model='{alias}']")
    assert f"alias of {model}" in row.inner_text()
    page.goto(f"{dashboard.url}/ui/#/playground")
    option = f"#model-a optgroup[label='Aliases'] option[value='{alias}']"
    page.wait_for_selector(option, state="attached")
    page.goto(f"{dashboard.url}/ui/#/models")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"tr[data-model='{alias}'] button.delete")
    page.wait_for_selector(f"tr[data-model='{alias}']", state="detached")
    with standins.api(dashboard.url, dashboard.server.key_a) as http:
        assert http.get(f"/v1/models/aliases/{alias}").status_code == 404
        assert http.get(f"/v1/models/{model}").status_code == 200
