"""A scripted fine-tuning job for the stand-in: one step per retrieve.

Each time the job is retrieved it moves to the next of `statuses` and adds a metrics event,
so clients see a job make progress as a real one does, without a trainer.
"""

from __future__ import annotations

from typing import Any

from .standin import Reply, Seen, StandIn


class ScriptedJob:
    """Goes through `statuses` one retrieve at a time, adding one metrics event each."""

    def __init__(self, statuses: list[str], error: dict[str, Any] | None = None) -> None:
        self.statuses = statuses
        self.error = error
        self.step = 0
        self.events: list[dict[str, Any]] = []  # oldest first

    def retrieve(self, _: Seen) -> Reply:
        status = self.statuses[min(self.step, len(self.statuses) - 1)]
        if self.step < len(self.statuses):
            n = len(self.events)
            total = len(self.statuses) - 1
            data = {"step": n, "total_steps": total, "train_loss": 2.0 - n / 2}
            self.events.append({"id": f"ftevent-{n}", "object": "fine_tuning.job.event",
                                "created_at": 100 + n, "level": "info",
                                "message": f"Step {n}/{total}: training loss={data['train_loss']}",
                                "type": "metrics", "data": data})  # fmt: skip
        self.step += 1
        final = status in ("succeeded", "failed", "cancelled")
        body = {"id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1, "model": "m",
                "status": status, "training_file": "file-1",
                "error": self.error if status == "failed" else None,
                "fine_tuned_model": "ft:m:p::abc" if status == "succeeded" else None,
                "finished_at": 200 if final else None}  # fmt: skip
        return Reply(200, body)

    def list_events(self, seen: Seen) -> Reply:
        newest_first = self.events[::-1]
        limit = int(seen.query.get("limit", 20))
        start = 0
        if "after" in seen.query:
            start = [e["id"] for e in newest_first].index(seen.query["after"]) + 1
        data = newest_first[start : start + limit]
        return Reply(200, {"object": "list", "data": data,
                           "has_more": start + limit < len(newest_first)})  # fmt: skip

    def serve(self, standin: StandIn) -> None:
        standin.route("GET", "/fine_tuning/jobs/ftjob-1", self.retrieve)
        standin.route("GET", "/fine_tuning/jobs/ftjob-1/events", self.list_events)
