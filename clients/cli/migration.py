"""Moving fine-tuning jobs from a source account (OpenAI, Azure OpenAI, another Whetstone)
to this Whetstone: files copied byte for byte, each job re-created on its mapped base model.

Idempotent, with nothing kept on the machine that runs it:

- a migrated job carries `metadata.migrated_from` = the source job's id, and the jobs list
  filters on it (`metadata[migrated_from]=...`), so a job already there is found, not made
  again;
- a copied file is named `{source file id}__{source filename}`. The source's file ids are
  unique in its account, and the service stores an upload whole or not at all (a body cut
  short is refused), so a file of that name with the source's byte count is a finished
  copy: a rerun (from any machine) reuses it. A copy whose size differs is deleted.
- the answers of `--evaluate` are a `user_data` file named `source-answers-{job id}.jsonl`,
  reused the same way;
- each source model's name becomes an alias of the model its migrated job made, once that
  job has succeeded (`migration_aliases`): a rerun sets those that were pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, cast

from clients.sdk import APIStatusError, NotFoundError, Whetstone, WhetstoneError
from clients.sdk.types import FileObject, FineTuningJob

from .distill import Distiller, NoPrompts
from .migration_aliases import AliasPlan, point_alias
from .replay import Replay, replay_answers, replay_held_out
from .source import ChunkReader, RewindError

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
METHODS = ("supervised", "dpo", "reinforcement")
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
REINFORCEMENT_HYPERPARAMETERS = (
    "compute_multiplier",
    "eval_interval",
    "eval_samples",
    "reasoning_effort",
)
SKIPPED_STATUSES = ("failed", "cancelled")
USER_DATA = "user_data"


@dataclass
class Row:
    """What happened to one source job (one line of the command's table)."""

    job: str
    source_model: str
    dest_model: str | None = None
    files: list[str] = field(default_factory=list)
    new_job: str | None = None
    status: str = ""
    notes: list[str] = field(default_factory=list)
    alias: AliasPlan | None = None

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed") or (self.alias is not None and self.alias.failed)


class Skip(Exception):
    """This job is listed and left alone; the message says why."""


def parse_model_map(pairs: Iterable[str]) -> dict[str, str]:
    """`SRC=DST` pairs as a dict; ValueError naming a pair without `=` or with an empty side."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"expected SOURCE_MODEL=DESTINATION_MODEL, got {pair!r}")
        mapping[src.strip()] = dst.strip()
    return mapping


def copy_name(source: FileObject) -> str:
    return f"{source.id}__{source.filename}"


def answers_name(job_id: str) -> str:
    return f"source-answers-{job_id}.jsonl"


def suffix_of(job: FineTuningJob) -> str | None:
    """The job's suffix: its own field when the source reports one (OpenAI does not), else
    the fourth segment of `ft:{base}:{org}:{suffix}:{id}`."""
    own = getattr(job, "suffix", None)
    if isinstance(own, str) and own:
        return own
    parts = (job.fine_tuned_model or "").split(":")
    if len(parts) >= 5 and parts[0] == "ft" and parts[3]:
        return parts[3]
    return None


def method_of(job: FineTuningJob) -> dict[str, Any]:
    """The job's method and hyperparameters as the source reports them (resolved numbers
    once it has run; `auto` where it has not); the top-level `hyperparameters` of jobs made
    before `method` existed. A reinforcement job keeps its grader as the source reports it
    (a model grader's model must be served here, or the create is refused and the row says
    why). Skip for a method this service does not train."""
    kind = job.method.type if job.method is not None else "supervised"
    if kind not in METHODS:
        raise Skip(f"method {kind} is not supported")
    block = getattr(job.method, kind, None) if job.method is not None else None
    hyper = getattr(block, "hyperparameters", None) or job.hyperparameters
    names = HYPERPARAMETERS + {
        "dpo": ("beta",), "reinforcement": REINFORCEMENT_HYPERPARAMETERS,
    }.get(kind, ())  # fmt: skip
    values = {n: v for n in names if (v := getattr(hyper, n, None)) is not None}
    if kind == "reinforcement":
        grader = getattr(block, "grader", None)
        if not grader:
            raise Skip("the source reports no grader for this reinforcement job")
        return {"type": kind, kind: {"grader": grader, "hyperparameters": values}}
    return {"type": kind, kind: {"hyperparameters": values}}


def metadata_for(job: FineTuningJob, ours: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """`ours` (which always fit) then the job's own pairs, within the API's limits (16 pairs,
    64-character keys, 512-character values), and a note for each pair dropped or cut."""
    out = dict(ours)
    notes: list[str] = []
    for key, value in (job.metadata or {}).items():
        if key in out:
            notes.append(f"metadata {key} replaced")
        elif len(key) > MAX_METADATA_KEY or len(out) >= MAX_METADATA_PAIRS:
            notes.append(f"metadata {key} dropped")
        else:
            out[key] = value[:MAX_METADATA_VALUE]
            if len(value) > MAX_METADATA_VALUE:
                notes.append(f"metadata {key} cut to {MAX_METADATA_VALUE} characters")
    return out, notes


@dataclass
class Migration:
    source: Whetstone
    dest: Whetstone
    model_map: Mapping[str, str]
    dry_run: bool = False
    evaluate: bool = False
    aliases: bool = True
    distiller: Distiller | None = None
    _copies: dict[str, FileObject] | None = None

    def source_jobs(self, job_ids: list[str]) -> Iterable[FineTuningJob]:
        """The named jobs, or every job of the source account (every page)."""
        if job_ids:
            return (self.source.fine_tuning.jobs.retrieve(i) for i in job_ids)
        return self.source.fine_tuning.jobs.list()

    def run(self, job_ids: list[str], done: Callable[[Row], None] = lambda _: None) -> list[Row]:
        rows: list[Row] = []
        for job in self.source_jobs(job_ids):
            row = self.migrate(job, named=bool(job_ids))
            rows.append(row)
            done(row)
        return rows

    def migrate(self, job: FineTuningJob, *, named: bool) -> Row:
        row = Row(job=job.id, source_model=job.model, dest_model=self.model_map.get(job.model))
        try:
            self._migrate(job, row, named)
        except Skip as skip:
            row.status = f"skipped ({skip})"
        except (WhetstoneError, RewindError) as exc:
            row.status = f"failed: {_reason(exc)}"
        return row

    def _migrate(self, job: FineTuningJob, row: Row, named: bool) -> None:
        existing = next(iter(self.dest.fine_tuning.jobs.list(metadata={"migrated_from": job.id})),
                        None)  # fmt: skip
        if existing is not None:
            row.new_job, row.status = existing.id, "exists"
            row.dest_model = existing.model
            if self.evaluate and "source_answers_file" not in (existing.metadata or {}):
                row.notes.append("no source answers (made without --evaluate)")
            if self.distiller and "distilled_from" not in (existing.metadata or {}):
                row.notes.append("not distilled (made without --distill)")
            row.alias = self.alias_of(job, existing)
            return
        if row.dest_model is None:
            raise Skip("no mapping")
        if job.status in SKIPPED_STATUSES and not named:
            raise Skip(f"source job {job.status}; name it with --jobs to move it anyway")
        method = method_of(job)
        ours = {"migrated_from": job.id}
        if self.distiller is not None and method["type"] == "supervised":
            training, validation = self.distilled(job, row, ours)
        else:
            if self.distiller is not None:
                row.notes.append(f"not distilled: a {method['type']} job trains on its own data")
            training = self.copy(job.training_file, row, "training")
            validation = (
                self.copy(job.validation_file, row, "validation") if job.validation_file else None
            )
        if self.evaluate:
            ours.update(self.answers(job, row, training, validation))
        metadata, notes = metadata_for(job, ours)
        row.notes.extend(notes)
        if self.dry_run:
            row.status = "would create"
            row.alias = self.alias_of(job, None)
            return
        created = self.dest.fine_tuning.jobs.create(
            model=row.dest_model, training_file=training, validation_file=validation,
            suffix=suffix_of(job), seed=job.seed, method=method, metadata=metadata,
        )  # fmt: skip
        row.new_job, row.status = created.id, "created"
        row.alias = self.alias_of(job, created)

    def alias_of(self, job: FineTuningJob, new_job: FineTuningJob | None) -> AliasPlan | None:
        """The alias of the source job's model name (`new_job` None: a dry run); None when
        the source job made no model or aliases are not wanted."""
        if not self.aliases or not job.fine_tuned_model:
            return None
        return point_alias(self.dest, job.fine_tuned_model, new_job)

    def distilled(
        self, job: FineTuningJob, row: Row, ours: dict[str, str]
    ) -> tuple[str, str | None]:
        """(training file, validation file) of a distilled job: the training file made of
        the source model's answers (`distill`), the validation file copied if the source
        still has it."""
        assert self.distiller is not None
        try:
            training, meta, note = self.distiller.training_file(
                job, self.copies(), dry_run=self.dry_run
            )
        except NoPrompts as exc:
            raise Skip(f"not distilled: {exc}") from None
        ours.update(meta)
        row.files.append(note)
        if not job.validation_file:
            return training, None
        try:
            return training, self.copy(job.validation_file, row, "validation")
        except NotFoundError:
            row.notes.append(f"validation file {job.validation_file} is gone from the source")
            return training, None

    def copies(self) -> dict[str, FileObject]:
        """The destination's files by name (listed once; each copy made is added)."""
        if self._copies is None:
            self._copies = {f.filename: f for f in self.dest.files.list()}
        return self._copies

    def copy(self, file_id: str, row: Row, role: str) -> str:
        """The destination's copy of a source file, made (streamed) unless one exists."""
        source = self.source.files.retrieve(file_id)
        name = copy_name(source)
        found = self.copies().get(name)
        if found is not None and found.bytes == source.bytes:
            row.files.append(f"{role} {file_id} -> {found.id} (reused)")
            return found.id
        if self.dry_run:
            row.files.append(f"{role} {file_id} -> copy, {source.bytes:,} bytes")
            return f"<copy of {file_id}>"
        chunks = self.source.files.iter_content(file_id)
        try:
            reader = cast(IO[bytes], ChunkReader(chunks))  # read() is all multipart needs
            copied = self.dest.files.create(file=(name, reader), purpose="fine-tune")
        finally:
            chunks.close()
        if copied.bytes != source.bytes:
            self.dest.files.delete(copied.id)
            raise WhetstoneError(
                f"{role} file {file_id}: {copied.bytes} bytes arrived of {source.bytes}"
            )
        self.copies()[name] = copied
        row.files.append(f"{role} {file_id} -> {copied.id} (copied)")
        return copied.id

    def answers(
        self, job: FineTuningJob, row: Row, training: str, validation: str | None
    ) -> dict[str, str]:
        """`source_answers_file` and `source_model` for the new job's metadata, or nothing
        (with a note saying why) when the source model cannot be asked. The prompts are the
        validation file's, or without one those of the training lines held out for the
        evaluation (read from the copy here, `training`)."""
        model = job.fine_tuned_model
        if model is None:
            row.notes.append(f"no source answers: the source job has no model ({job.status})")
            return {}
        name = answers_name(job.id)
        found = self.copies().get(name)
        if found is not None and found.purpose == USER_DATA:
            row.notes.append(f"source answers {found.id} (reused)")
            return {"source_answers_file": found.id, "source_model": model}
        prompts = "validation prompts" if validation else "held-out training prompts"
        if self.dry_run:
            row.notes.append(f"would replay the {prompts} on {model}")
            return {}
        replay: Replay = (
            replay_answers(self.source, model, job.validation_file)
            if job.validation_file and validation
            else replay_held_out(self.source, model, self.dest, training, job.seed or 0)
        )
        if replay.path is None:
            row.notes.append(f"no source answers: {replay.problem}")
            return {}
        try:
            with replay.path.open("rb") as handle:
                uploaded = self.dest.files.create(file=(name, handle), purpose=USER_DATA)
        finally:
            replay.path.unlink(missing_ok=True)
        self.copies()[name] = uploaded
        row.notes.append(f"source answers {uploaded.id} ({replay.count} {prompts})")
        return {"source_answers_file": uploaded.id, "source_model": model}


def _reason(exc: Exception) -> str:
    if isinstance(exc, APIStatusError):
        return f"{type(exc).__name__} [{exc.status_code}]: {exc.message}"
    return str(exc)
