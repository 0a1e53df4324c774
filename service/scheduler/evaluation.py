"""The evaluation worker: each succeeded job gets its evaluation report, in a thread of the
scheduler's own (`Scheduler.run_forever` starts it), so that a slow evaluation never holds
up validating, watching or claiming other jobs.

A job is owed an evaluation while it is `succeeded` with `evaluation` null. The worker takes
one (`running`, under a lease of `eval_lease_seconds` it renews while answers come), asks
the vLLM of its base model for greedy answers of the base model, the fine-tuned model, its
latest checkpoints (and a `source` model's recorded answers), and records the report as a
result file with an event. An evaluation whose scheduler died is taken again once its lease
runs out. Nothing here changes the job's status: a failure is a `warn` event
(`Evaluation failed: ...`) and `evaluation = failed`; a vLLM not reachable yet is waited for
`eval_wait_seconds` after the job's success.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy.orm import Session

from contracts import layout
from contracts.spec import JobSpec
from contracts.store import ObjectNotFound, ObjectStore, numbered_lines
from service.db.tables import FineTuningJob
from service.errors import ServiceError
from service.evaluation.answers import AnswerFailed, ModelServerDown, answer_all
from service.evaluation.examples import Example, read_examples
from service.evaluation.report import Scored, build_report, encode, summary
from service.evaluation.source_answers import Key, read_source_answers
from service.files import repository as files
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.results import save_result_bytes
from service.hashing import cache_salt
from service.ids import now
from service.models.vllms import VllmRoutes
from service.scheduler.context import SchedulerContext

log = logging.getLogger(__name__)
REPORT_FILENAME = "eval_report.json"
SOURCE_ANSWERS_KEY = "source_answers_file"
SOURCE_MODEL_KEY = "source_model"
MAX_EXAMPLE_LOSSES_BYTES = 16 * 1024 * 1024


class NotYet(Exception):
    """The base model's vLLM cannot answer yet; the evaluation waits."""


class Skip(Exception):
    """Nothing to evaluate on (said in an info event)."""


class Evaluator:
    def __init__(self, ctx: SchedulerContext, routes: VllmRoutes) -> None:
        self.ctx = ctx
        self.routes = routes

    def run_pending(self) -> list[str]:
        """Evaluate every job owed an evaluation, one after the other; returns the ids of
        those whose evaluation ended (report, skip or failure) in this call."""
        ended: list[str] = []
        passed_over: set[str] = set()
        while (job_id := self._take(passed_over)) is not None:
            passed_over.add(job_id)
            if self._evaluate(job_id):
                ended.append(job_id)
        return ended

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_pending()
            except Exception:
                log.exception("evaluation round failed")
            stop.wait(self.ctx.settings.scheduler_poll_seconds)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run_forever, args=(stop,), name="evaluation", daemon=True
        )
        thread.start()
        return thread

    # --- one job -------------------------------------------------------------------------

    def _take(self, passed_over: set[str]) -> str | None:
        with self.ctx.sessions() as session:
            job = repo.next_to_evaluate(session, self.ctx.on_postgres, passed_over)
            if job is None:
                return None
            if not self.ctx.settings.eval_enabled:
                job.evaluation = "skipped"
            else:
                job.evaluation = "running"
                job.evaluation_lease_expires_at = now() + int(self.ctx.settings.eval_lease_seconds)
            session.commit()
            return job.id if job.evaluation == "running" else None

    def _evaluate(self, job_id: str) -> bool:
        """True when the evaluation ended; False when it waits for vLLM (pending again)."""
        started = time.monotonic()
        try:
            report = self._report(job_id, started)
        except NotYet as e:
            return self._wait_or_fail(job_id, str(e))
        except Skip as e:
            self._end(job_id, "skipped", f"Evaluation skipped: {e}", "info")
            return True
        except Exception as e:
            log.warning("evaluation of %s failed", job_id, exc_info=e)
            self._end(job_id, "failed", f"Evaluation failed: {_describe(e)}", "warn")
            return True
        self._record(job_id, report)
        return True

    def _report(self, job_id: str, started: float) -> dict[str, Any]:
        settings = self.ctx.settings
        with self.ctx.sessions() as session:
            job = repo.find_job(session, job_id)
            assert job is not None
            examples, data, file_id = self._examples(job)
            checkpoints = self._checkpoints(session, job)
            source = self._source(session, job, examples, data)
            base_model, fine_tuned = job.base_model, job.fine_tuned_model or job.output_model
            salt = cache_salt(job.project_id, None)
        try:
            address = self.routes.address(base_model)
        except ServiceError as e:
            if e.code == "model_not_ready":
                raise NotYet(e.message) from e
            raise
        last_valid = self._final_validation(job_id)
        models = [
            Scored(base_model, "base", None),
            Scored(fine_tuned, "fine_tuned", None, None, *last_valid),
            *checkpoints,
        ]
        renew = _Renewal(self.ctx, job_id)
        for scored in models:
            try:
                scored.answers = answer_all(
                    address, scored.model, examples,
                    max_tokens=settings.eval_max_tokens, concurrency=settings.eval_concurrency,
                    timeout=settings.vllm_read_timeout, on_answer=renew,
                    headers=self.routes.auth_headers(base_model), cache_salt=salt,
                )  # fmt: skip
            except ModelServerDown as e:
                raise NotYet(str(e)) from e
            except AnswerFailed as e:
                if scored.kind != "checkpoint":
                    raise
                scored.error = str(e)
        if source is not None:
            models.append(source)
        return build_report(
            examples, models, data=data, file=file_id, outliers=self._outliers(job_id),
            seconds=time.monotonic() - started,
        )  # fmt: skip

    def _examples(self, job: FineTuningJob) -> tuple[list[Example], Any, str]:
        cap, store = self.ctx.settings.eval_max_examples, self.ctx.store
        if job.validation_file:
            key = files.file_key(job.validation_file)
            examples = read_examples(store, key, cap)
            data, file_id = "validation_file", job.validation_file
        else:
            held = JobSpec.model_validate_json(job.spec).held_out_lines if job.spec else []
            if not held:
                raise Skip("the job has no validation file and held out no training lines")
            examples = read_examples(store, files.file_key(job.training_file), cap, held)
            data, file_id = "held_out", job.training_file
        if not examples:
            raise Skip("no example with an assistant answer to compare with")
        return examples, data, file_id

    def _checkpoints(self, session: Any, job: FineTuningJob) -> list[Scored]:
        """The latest `eval_max_checkpoints` checkpoints whose model is not deleted."""
        rows = repo.latest_live_checkpoints(session, job.id, self.ctx.settings.eval_max_checkpoints)
        return [
            Scored(
                c.fine_tuned_model_checkpoint,
                "checkpoint",
                None,
                c.step_number,
                c.metrics.get("full_valid_loss", c.metrics.get("valid_loss")),
                c.metrics.get(
                    "full_valid_mean_token_accuracy", c.metrics.get("valid_mean_token_accuracy")
                ),
            )  # fmt: skip
            for c in reversed(rows)
        ]

    def _source(
        self, session: Any, job: FineTuningJob, examples: list[Example], data: str
    ) -> Scored | None:
        """The answers another system gave (`metadata.source_answers_file`, JSONL of
        `{"index": i, "answer": str}`, or `{"line": n, ...}` for held-out training lines)
        scored as the model `metadata.source_model`."""
        meta = job.job_metadata or {}
        file_id, model = meta.get(SOURCE_ANSWERS_KEY), meta.get(SOURCE_MODEL_KEY)
        if not file_id or not model:
            return None
        row = files.get_file(session, job.project_id, file_id)
        if row is None:
            return Scored(model, "source", None, error=f"file {file_id} not found")
        by: Key = "line" if data == "held_out" else "index"
        numbers = [e.line if by == "line" else e.index for e in examples]
        try:  # streamed and capped: the file is the tenant's
            given = read_source_answers(
                self.ctx.store, files.file_key(file_id), numbers,
                self.ctx.settings.eval_source_answers_max_bytes, by,
            )  # fmt: skip
        except (ObjectNotFound, ValueError, KeyError, TypeError) as e:
            return Scored(model, "source", None, error=f"file {file_id}: {_describe(e)}")
        return Scored(model, "source", [given.get(n, "") for n in numbers])

    def _final_validation(self, job_id: str) -> tuple[float | None, float | None]:
        """The last validation loss and token accuracy of the trainer's metrics CSV."""
        lines = numbered_lines(self.ctx.store, layout.metrics_key(job_id), max_line=64 * 1024)
        last: dict[str, str] | None = None
        try:  # streamed: only the last row with a validation loss is kept
            for row in csv.DictReader(line.decode() for _, line in lines):
                if row.get("valid_loss"):
                    last = row
        except (ObjectNotFound, ValueError):
            return None, None
        if last is None:
            return None, None
        accuracy = last.get("valid_mean_token_accuracy")
        return float(last["valid_loss"]), float(accuracy) if accuracy else None

    def _outliers(self, job_id: str) -> list[dict[str, Any]]:
        key = layout.example_losses_key(job_id)
        try:  # a short list the trainer writes; one past the cap is not read
            if self.ctx.store.size(key) > MAX_EXAMPLE_LOSSES_BYTES:
                return []
            data = json.loads(self.ctx.store.get_bytes(key))
        except (ObjectNotFound, ValueError):
            return []
        return [{"line": int(e["line"]), "loss": float(e["loss"])} for e in data["examples"]]

    # --- outcomes ------------------------------------------------------------------------

    def _record(self, job_id: str, report: dict[str, Any]) -> None:
        with self.ctx.sessions() as session:
            job = repo.find_job(session, job_id)
            if job is None or job.evaluation != "running":
                return
            attach_report(session, self.ctx.store, job, report)
            session.commit()

    def _end(self, job_id: str, outcome: str, message: str, level: jobs.Level) -> None:
        with self.ctx.sessions() as session:
            job = repo.find_job(session, job_id)
            if job is None:
                return
            job.evaluation, job.evaluation_lease_expires_at = outcome, None
            jobs.add_event(session, job, message, level=level)
            session.commit()

    def _wait_or_fail(self, job_id: str, reason: str) -> bool:
        with self.ctx.sessions() as session:
            job = repo.find_job(session, job_id)
            finished = (job.finished_at or 0) if job is not None else 0
        if now() - finished >= self.ctx.settings.eval_wait_seconds:
            self._end(job_id, "failed", f"Evaluation failed: {reason}", "warn")
            return True
        log.info("evaluation of %s waits: %s", job_id, reason)
        with self.ctx.sessions() as session:
            job = repo.find_job(session, job_id)
            if job is not None and job.evaluation == "running":
                job.evaluation, job.evaluation_lease_expires_at = None, None
                session.commit()
        return False


class _Renewal:
    """Renews the evaluation's lease once half of it has passed (called after each answer,
    from the answering threads)."""

    def __init__(self, ctx: SchedulerContext, job_id: str) -> None:
        self.ctx, self.job_id = ctx, job_id
        self.half = ctx.settings.eval_lease_seconds / 2
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            if time.monotonic() - self.last < self.half:
                return
            self.last = time.monotonic()
            with self.ctx.sessions() as session:
                job = repo.find_job(session, self.job_id)
                if job is not None and job.evaluation == "running":
                    job.evaluation_lease_expires_at = now() + int(
                        self.ctx.settings.eval_lease_seconds
                    )
                    session.commit()


def _describe(e: Exception) -> str:
    message = e.message if isinstance(e, ServiceError) else str(e)
    return message or type(e).__name__


def attach_report(
    session: Session, store: ObjectStore, job: FineTuningJob, report: dict[str, Any]
) -> None:
    """`report` stored as the job's result file `eval_report.json`, the job's evaluation
    `done`, and its summary an event."""
    result = save_result_bytes(session, store, job, REPORT_FILENAME, encode(report))
    job.result_files = [*job.result_files, result.id]
    job.evaluation = "done"
    job.evaluation_lease_expires_at = None
    jobs.add_event(session, job, summary(report), data={"result_file": result.id})
