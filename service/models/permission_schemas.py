"""Checkpoint permissions as OpenAI's spec has them (`FineTuningCheckpointPermission`,
`checkpoint.permission`): a project granted the use of another project's fine-tuned model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.db.tables import CheckpointPermission as PermissionRow
from service.schemas.common import ListPage


class FineTuningCheckpointPermission(BaseModel):
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    id: str
    created_at: int
    project_id: str

    @classmethod
    def of(cls, row: PermissionRow) -> FineTuningCheckpointPermission:
        return cls(id=row.id, created_at=row.created_at, project_id=row.project_id)


class CreateFineTuningCheckpointPermissionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_ids: list[str] = Field(
        min_length=1, max_length=100, description="The project identifiers to grant access to."
    )


class ListFineTuningCheckpointPermissionResponse(ListPage[FineTuningCheckpointPermission]):
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(
        cls, rows: list[PermissionRow], has_more: bool
    ) -> ListFineTuningCheckpointPermissionResponse:
        data = [FineTuningCheckpointPermission.of(r) for r in rows]
        return cls(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )


class DeleteFineTuningCheckpointPermissionResponse(BaseModel):
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    id: str
    deleted: bool = True
