"""Auto-pagination with `after` cursors, against the in-process stand-in (`standin.py`)."""

from __future__ import annotations

import asyncio

from clients.sdk import AsyncWhetstone, Whetstone

from .standin import Reply, Seen, StandIn

JOB_IDS = [f"ftjob-{i}" for i in range(7)]


def _job(job_id: str) -> dict[str, object]:
    return {"id": job_id, "object": "fine_tuning.job", "created_at": 1, "model": "m",
            "status": "queued", "training_file": "file-1", "error": None,
            "future_field": {"kept": True}}  # fmt: skip


def _jobs_page(seen: Seen) -> Reply:
    limit = int(seen.query.get("limit", 3))
    start = JOB_IDS.index(seen.query["after"]) + 1 if "after" in seen.query else 0
    ids = JOB_IDS[start : start + limit]
    body = {"object": "list", "data": [_job(i) for i in ids],
            "has_more": start + limit < len(JOB_IDS)}  # fmt: skip
    return Reply(200, body)


def test_iterating_a_list_fetches_every_page(standin: StandIn) -> None:
    standin.route("GET", "/fine_tuning/jobs", _jobs_page)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        page = client.fine_tuning.jobs.list(limit=3)
        assert [j.id for j in page.data] == JOB_IDS[:3]
        assert page.has_more
        assert [j.id for j in page] == JOB_IDS
    afters = [r.query.get("after") for r in standin.requests]
    assert afters == [None, "ftjob-2", "ftjob-5"]


def test_pages_one_by_one(standin: StandIn) -> None:
    standin.route("GET", "/fine_tuning/jobs", _jobs_page)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        pages = list(client.fine_tuning.jobs.list(limit=3).iter_pages())
    assert [len(p.data) for p in pages] == [3, 3, 1]
    assert not pages[-1].has_next_page()


def test_unknown_fields_are_kept(standin: StandIn) -> None:
    standin.route("GET", "/fine_tuning/jobs", _jobs_page)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        job = client.fine_tuning.jobs.list(limit=1).data[0]
    assert job.model_extra == {"future_field": {"kept": True}}


def test_async_iteration_fetches_every_page(standin: StandIn) -> None:
    standin.route("GET", "/fine_tuning/jobs", _jobs_page)

    async def go() -> tuple[list[str], list[str]]:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            first = await client.fine_tuning.jobs.list(limit=3)
            every = [j.id async for j in client.fine_tuning.jobs.list(limit=2)]
            return [j.id for j in first.data], every

    first, every = asyncio.run(go())
    assert first == JOB_IDS[:3]
    assert every == JOB_IDS


def test_metadata_filter_is_sent_as_deep_object(standin: StandIn) -> None:
    standin.route("GET", "/fine_tuning/jobs", _jobs_page)
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        client.fine_tuning.jobs.list(metadata={"team": "search"})
    assert standin.requests[0].query["metadata[team]"] == "search"
