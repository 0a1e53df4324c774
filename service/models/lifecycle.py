"""A model appears and disappears here, and only here: its row, its pointer, the chat access
cache and vLLM, each in its turn.

`publish` (a checkpoint registered, a job succeeded): the `FineTunedModel` row if it is not
there yet (a retried report finds it), then the pointer that lets vLLM's resolver serve the
name, then, given `adapters` (the scheduler gives them for a final model) and once the
caller's transaction commits, a warm start in the vLLM of its base model (in the background:
the caller does not wait). A model already deleted stays deleted: a report retried after the
user deleted it (or after retention pruned it) writes no pointer.

`delete` (`DELETE /v1/models/{model}`): the pointer first, so no vLLM can resolve the name
any more even if the database write then fails (a retry finishes it); then the row is marked
deleted, this process's chat access cache forgets the model, and vLLM unloads it (best
effort: a failure is logged; the database is what keeps deleted models out). Deleting a
job's final model deletes its checkpoint models with it, the same way.

`retire_checkpoints` (the trainer pruned checkpoints from the store): each checkpoint model
of the job whose step the trainer no longer keeps goes the same way as a deleted one, so
nothing listed points at an adapter that is gone.

Neither commits: the request or the report's transaction does (docs/architecture.md, "Job
statuses" and "Chat completions in the service").
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import partial
from typing import TYPE_CHECKING, Literal

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from contracts.names import checkpoint_model_name
from contracts.store import ObjectStore
from service.db.tables import FineTunedModel, FineTuningJob, Project
from service.errors import PermissionDenied, not_found
from service.ids import now
from service.models import repository as repo
from service.models.pointers import publish_model, unpublish_model
from service.models.schemas import DeleteModelResponse
from service.registry import BaseModelEntry

if TYPE_CHECKING:
    from service.models.access import ChatAccess
    from service.models.warm_start import AdapterControl

Kind = Literal["final", "checkpoint"]
_AFTER_COMMIT = "whetstone.after_commit"


def publish(
    session: Session,
    store: ObjectStore,
    job: FineTuningJob,
    name: str,
    kind: Kind,
    adapter_prefix: str,
    *,
    adapters: AdapterControl | None = None,
) -> FineTunedModel:
    """Make the model `name` of `job` appear: row, pointer, then (with `adapters`, once the
    session commits) its warm start. Returns the row."""
    row = repo.find_model(session, name)
    if row is not None and row.deleted_at is not None:
        return row  # deleted (by the user or retention) before this report came: stays so
    if row is None:
        row = repo.add_model(
            session,
            FineTunedModel(
                id=name,
                project_id=job.project_id,
                job_id=job.id,
                kind=kind,
                base_model=job.base_model,
                adapter_prefix=adapter_prefix,
                created_at=now(),
            ),
        )
    publish_model(store, name, job.base_model, adapter_prefix)
    if adapters is not None:
        base_model = job.base_model
        _after_commit(session, lambda: adapters.warm_start_later(name, base_model))
    return row


def delete(
    session: Session,
    store: ObjectStore,
    registry: dict[str, BaseModelEntry],
    project: Project,
    name: str,
    *,
    access: ChatAccess | None = None,
    adapters: AdapterControl | None = None,
) -> DeleteModelResponse:
    """Make one of the project's fine-tuned models disappear: pointer, row, the chat access
    cache, vLLM; a final model takes its job's checkpoint models with it. 403 for a base
    model; 404 for another project's, a deleted or unknown one."""
    if name in registry:
        raise PermissionDenied(
            f"You have insufficient permissions for this operation: {name} is a base model "
            "and cannot be deleted.",
            param="model",
            code="insufficient_permissions",
        )
    row = repo.get_model(session, project.id, name)
    if row is None:
        raise not_found("model", name, param="model")
    rows = [row]
    if row.kind == "final":
        rows += repo.live_checkpoint_models(session, row.job_id)
    for each in rows:
        _remove(session, store, each, access=access, adapters=adapters)
    return DeleteModelResponse(id=name, deleted=True)


def retire_checkpoints(
    session: Session,
    store: ObjectStore,
    job: FineTuningJob,
    kept_steps: Collection[int],
    *,
    access: ChatAccess | None = None,
    adapters: AdapterControl | None = None,
) -> list[str]:
    """Delete the job's checkpoint models whose step is not in `kept_steps` (the trainer's
    retention removed their adapters from the store); returns their names."""
    kept = {checkpoint_model_name(job.output_model, step) for step in kept_steps}
    gone = [r for r in repo.live_checkpoint_models(session, job.id) if r.id not in kept]
    for row in gone:
        _remove(session, store, row, access=access, adapters=None)
        if adapters is not None:  # once committed: the trainer's report does not wait on it
            _after_commit(session, partial(adapters.unload_deleted, row.id))
    return [r.id for r in gone]


def _remove(
    session: Session,
    store: ObjectStore,
    row: FineTunedModel,
    *,
    access: ChatAccess | None,
    adapters: AdapterControl | None,
) -> None:
    """Pointer, row, the chat access cache, vLLM: in that order."""
    unpublish_model(store, row.id)
    repo.mark_deleted(session, row, now())
    if access is not None:
        access.forget_model(row.id)
    if adapters is not None:
        adapters.unload_deleted(row.id)  # after its pointer is gone: not loaded again


def _after_commit(session: Session, action: Callable[[], object]) -> None:
    """Run `action` once the session's transaction commits; a rollback drops it."""
    pending: list[Callable[[], object]] | None = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_transaction_end", _drop_pending)
    pending.append(action)


def _run_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the transaction goes on
        return
    pending = session.info.get(_AFTER_COMMIT, [])
    while pending:
        pending.pop(0)()


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended, committed or not
        session.info.get(_AFTER_COMMIT, []).clear()
