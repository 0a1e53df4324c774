"""`whetstone migrate`'s last step: each source job's `fine_tuned_model` name (what an
application calls, `ft:gpt-4o-mini-2024-07-18:acme::AbC123`) becomes a model alias of the
model its migrated job made here, so that the application changes its base URL and key and
nothing else.

An alias can only point at a model that exists: while the migrated job has not succeeded,
its alias is `pending`. Running `whetstone migrate` again (any time, from any machine) sets
the aliases whose jobs have succeeded since; `--wait` stays until every migrated job has
ended and sets them in the same run. An alias that already exists is kept as it is, also
when it points elsewhere (re-pointed by hand after a retrain): a rerun never undoes that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from clients.sdk import APIStatusError, NotFoundError, Whetstone
from clients.sdk.types import FineTuningJob

FINAL = ("succeeded", "failed", "cancelled")
SET, EXISTS, KEPT, PENDING, WOULD_SET = "set", "exists", "kept", "pending", "would set"


@dataclass
class AliasPlan:
    """The alias of one source job's model: `name` -> `model` (None until the migrated job
    has a model), and what became of it (`status`)."""

    name: str
    model: str | None = None
    status: str = PENDING
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")

    def line(self) -> str:
        target = self.model or "(the new job's model)"
        return f"alias {self.name} -> {target}: {self.status}" + (
            f" ({self.note})" if self.note else ""
        )


def point_alias(dest: Whetstone, name: str, job: FineTuningJob | None) -> AliasPlan:
    """Set the alias `name` of the model `job` made, if it has one yet (`job` None: a dry
    run, nothing is made)."""
    plan = AliasPlan(name)
    if job is None:
        plan.status = WOULD_SET
        return plan
    if job.status != "succeeded" or job.fine_tuned_model is None:
        if job.status in FINAL:
            plan.status = f"failed: the new job {job.id} is {job.status}"
        else:
            plan.note = f"{job.id} is {job.status}; run migrate again once it succeeds, or --wait"
        return plan
    plan.model = job.fine_tuned_model
    try:
        found = dest.models.aliases.retrieve(name)
    except NotFoundError:
        found = None
    except APIStatusError as exc:
        plan.status = f"failed: {exc.status_code} {exc.message}"
        return plan
    if found is not None:
        plan.status = EXISTS if found.model == plan.model else KEPT
        if plan.status == KEPT:
            plan.note = f"it points at {found.model}; re-point it with whetstone models alias"
        return plan
    try:
        dest.models.aliases.create(name=name, model=plan.model)
    except APIStatusError as exc:
        plan.status = f"failed: {exc.status_code} {exc.message}"
        return plan
    plan.status = SET
    return plan


def wait_and_point(
    dest: Whetstone,
    pending: dict[str, str],
    *,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    ended: Callable[[str, AliasPlan], None] = lambda *_: None,
) -> dict[str, AliasPlan]:
    """Wait until each new job in `pending` (new job id -> alias name) has ended, then point
    its alias; `ended` is told of each as it comes. Returns the plans by new job id."""
    plans: dict[str, AliasPlan] = {}
    waiting = dict(pending)
    while waiting:
        for job_id, name in list(waiting.items()):
            job = dest.fine_tuning.jobs.retrieve(job_id)
            if job.status in FINAL:
                plans[job_id] = point_alias(dest, name, job)
                del waiting[job_id]
                ended(job_id, plans[job_id])
        if waiting:
            sleep(poll_seconds)
    return plans
