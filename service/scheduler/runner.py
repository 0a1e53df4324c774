"""The `Scheduler`: one round is validate -> watch attempts -> claim; `run_forever` loops.

Each stage handles its jobs one by one, and an exception for one job ends or retries that
job only (`failures`). A stage that fails as a whole (the database is down) is logged and
the round goes on with the next stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contracts.store import ObjectStore
from service.executors import Executor, build_executor
from service.files.uploads import sweep_all
from service.models.vllms import VllmRoutes
from service.registry import BaseModelEntry, load_registry
from service.scheduler.claim import claim_and_launch
from service.scheduler.context import SchedulerContext
from service.scheduler.evaluation import Evaluator
from service.scheduler.leases import reap_orphans, watch_attempts
from service.scheduler.prepare import validate_pending
from service.scheduler.shutdown import stop_attempts
from service.settings import Settings
from service.webhooks.deliverer import WebhookDeliverer

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TickReport:
    """What one round did (for logs, tests and the bench)."""

    validated: int
    launched: list[str]
    orphans_killed: list[str]
    failed_stages: list[str] = field(default_factory=list)
    """The stages that raised this round (logged), e.g. `["validate"]`."""
    swept_uploads: int = 0
    """Ended or expired uploads whose parts this round removed (every `uploads_sweep_seconds`)."""


class Scheduler:
    """Validates new jobs, watches live attempts, and launches queued jobs."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        registry: dict[str, BaseModelEntry] | None = None,
        executor: Executor | None = None,
        routes: VllmRoutes | None = None,
    ) -> None:
        self.ctx = SchedulerContext(
            settings=settings,
            sessions=sessions,
            store=store,
            registry=registry if registry is not None else load_registry(settings),
            executor=executor or build_executor(settings, settings.resolved_data_dir),
        )
        self._adopted = False
        self._next_sweep = 0.0  # monotonic time of the next sweep of ended uploads
        self.evaluator = Evaluator(self.ctx, routes or VllmRoutes(settings.vllm_urls))
        """Evaluation reports of succeeded jobs: its own thread while `run_forever` runs."""

    def tick(self) -> TickReport:
        """One round; safe to run in several processes against one Postgres."""
        failed: list[str] = []
        orphans: list[str] = []
        if not self._adopted:
            orphans = self._stage("reap", failed, reap_orphans, orphans)
            self._adopted = not failed
        validated = self._stage("validate", failed, validate_pending, 0)
        self._stage("watch", failed, watch_attempts, None)
        launched: list[str] = self._stage("claim", failed, claim_and_launch, [])
        swept = 0
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.ctx.settings.uploads_sweep_seconds
            swept = self._stage("sweep", failed, _sweep_uploads, 0)
        return TickReport(validated, launched, orphans, failed, swept)

    def _stage(
        self, name: str, failed: list[str], run: Callable[[SchedulerContext], T], default: T
    ) -> T:
        try:
            return run(self.ctx)
        except OperationalError as e:
            log.warning("scheduler stage %s failed on the database: %s", name, e)
        except Exception:
            log.exception("scheduler stage %s failed", name)
        failed.append(name)
        return default

    def run_forever(self, stop: threading.Event) -> None:
        """Tick every `scheduler_poll_seconds` until `stop` is set; errors are logged, not fatal.
        The webhook deliverer and the evaluation worker run beside the rounds, each in a
        thread of its own, so that no endpoint and no evaluation holds up the jobs."""
        deliverer = WebhookDeliverer(self.ctx.settings, self.ctx.sessions)
        webhooks = threading.Thread(
            target=deliverer.run_forever, args=(stop,), name="webhooks", daemon=True
        )
        webhooks.start()
        interval = self.ctx.settings.scheduler_poll_seconds
        evaluations = self.evaluator.start(stop)
        try:
            self._loop(stop, interval)
        finally:
            stop.set()
            webhooks.join()
            deliverer.close()
            evaluations.join(timeout=5)

    def _loop(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                report = self.tick()
                if report.launched or report.validated:
                    log.info("validated %d, launched %s", report.validated, report.launched)
            except OperationalError as e:
                log.warning("scheduler round failed on the database: %s", e)
            except Exception:
                log.exception("scheduler round failed")
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def stop_attempts(self) -> list[str]:
        """After `run_forever` has returned: stop the running trainers (each saves a
        checkpoint) and requeue their jobs; returns the job ids."""
        return stop_attempts(self.ctx, self.ctx.settings.trainer_kill_grace_seconds)


def _sweep_uploads(ctx: SchedulerContext) -> int:
    """Expire uploads past their hour and remove the parts of ended ones."""
    swept = sweep_all(ctx.sessions, ctx.store)
    if swept:
        log.info("swept %d ended upload(s) and their parts", swept)
    return swept
