"""`whetstone migrate --distill`: a job's training data comes from its source model's
behaviour. The source fine-tuned model answers the job's prompts (`recording`, as
`whetstone record` does) and the new job trains on those answers instead of the original
assistant messages; its metadata says so (`distilled_from` the source model,
`distill_prompts` where the prompts came from).

The prompts are those of the job's training file; when the source no longer has it, its
validation file's, else the local file given with `--distill-prompts`. The answers are
recorded into `{work dir}/{source job id}.jsonl` first, so that a crash or Ctrl-C costs
nothing twice (a rerun continues), then uploaded as `distilled-{source job id}.jsonl`, which
a rerun reuses. Only supervised jobs are distilled: a DPO job's pairs are copied as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clients.sdk import NotFoundError, Whetstone, WhetstoneError
from clients.sdk.types import FileObject, FineTuningJob

from .recording import Recorder, estimate_tokens, read_prompts, recorded, still_to_ask

FINE_TUNE = "fine-tune"


class NoPrompts(Exception):
    """The job cannot be distilled (no model, no prompts left anywhere); the message says why."""


def distilled_name(job_id: str) -> str:
    return f"distilled-{job_id}.jsonl"


@dataclass
class Distiller:
    source: Whetstone
    dest: Whetstone
    work_dir: Path
    prompts_file: Path | None = None
    concurrency: int = 4

    def prompts(self, job: FineTuningJob) -> tuple[Path, str]:
        """A local copy of the job's prompts and where they came from."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for role, file_id in (("training", job.training_file), ("validation", job.validation_file)):
            if not file_id:
                continue
            path = self.work_dir / f"{job.id}.{role}-prompts.jsonl"
            try:
                _download(self.source, file_id, path)
            except NotFoundError:
                continue
            return path, file_id
        if self.prompts_file is not None:
            return self.prompts_file, self.prompts_file.name
        raise NoPrompts(
            "its files are gone from the source; give the prompts with --distill-prompts FILE"
        )

    def training_file(
        self, job: FineTuningJob, copies: dict[str, FileObject], *, dry_run: bool
    ) -> tuple[str, dict[str, str], str]:
        """(the destination's training file, the metadata to add, a note for the table)."""
        model = job.fine_tuned_model
        if not model:
            raise NoPrompts(f"the source job has no model to learn from ({job.status})")
        name = distilled_name(job.id)
        found = copies.get(name)
        if found is not None and found.purpose == FINE_TUNE:
            meta = {"distilled_from": model, "distill_prompts": "(recorded before)"}
            return found.id, meta, f"training: distilled {found.id} (reused)"
        path, origin = self.prompts(job)
        meta = {"distilled_from": model, "distill_prompts": origin}
        out = self.work_dir / f"{job.id}.jsonl"
        todo = still_to_ask(read_prompts(path), recorded(out))
        if dry_run:
            note = (f"training: would record {len(todo):,} answers of {model} to the prompts "
                    f"of {origin} (about {estimate_tokens(todo):,} prompt tokens)")  # fmt: skip
            return f"<distilled from {model}>", meta, note
        outcome = Recorder(self.source, model, out, self.concurrency).run(todo)
        if outcome.failed or outcome.stopped:
            first = outcome.failed[0] if outcome.failed else "stopped"
            raise WhetstoneError(
                f"{len(todo) - outcome.answered} of {len(todo)} prompts not answered by {model} "
                f"({first}); run migrate again to ask the rest"
            )
        with out.open("rb") as handle:
            uploaded = self.dest.files.create(file=(name, handle), purpose=FINE_TUNE)
        copies[name] = uploaded
        note = f"training: distilled {uploaded.id} ({len(todo):,} answers of {model} recorded)"
        return uploaded.id, meta, note


def _download(source: Whetstone, file_id: str, path: Path) -> None:
    chunks = source.files.iter_content(file_id)
    try:
        with path.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    finally:
        chunks.close()
