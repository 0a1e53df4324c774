"""A model appears and disappears here, and only here: its row, its pointer, the chat access
cache and vLLM, each in its turn.

`publish` (a checkpoint registered, a job succeeded): the `FineTunedModel` row if it is not
there yet (a retried report finds it), then the pointer that lets vLLM's resolver serve the
name, then, given `adapters` (the scheduler gives them for a final model) and once the
caller's transaction commits, a warm start in the vLLM of its base model (in the background:
the caller does not wait).

`delete` (`DELETE /v1/models/{model}`): the pointer first, so no vLLM can resolve the name
any more even if the database write then fails (a retry finishes it); then the row is marked
deleted, this process's chat access cache forgets the model, and vLLM unloads it (best
effort: a failure is logged; the database is what keeps deleted models out).

Neither commits: the request or the report's transaction does (docs/architecture.md, "Job
statuses" and "Chat completions in the service").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from contracts.store import ObjectStore
from service.db.repositories import models as repo
from service.db.tables import FineTunedModel, FineTuningJob, Project
from service.errors import PermissionDenied, not_found
from service.ids import now
from service.models.pointers import publish_model, unpublish_model
from service.registry import BaseModelEntry
from service.schemas.models import DeleteModelResponse

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
    cache, vLLM. 403 for a base model; 404 for another project's, a deleted or unknown one."""
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
    unpublish_model(store, name)
    repo.mark_deleted(session, row, now())
    if access is not None:
        access.forget_model(name)
    if adapters is not None:
        adapters.unload_deleted(name)  # after its pointer is gone: not loaded again
    return DeleteModelResponse(id=name, deleted=True)


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
