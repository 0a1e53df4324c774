"""The Admin API's objects as OpenAI's spec has them: `organization.project` and
`organization.project.api_key` (`Project`, `ProjectApiKey`), their lists and deletion."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.db.tables import ApiKey as ApiKeyRow
from service.db.tables import Project as ProjectRow
from service.schemas.common import ListPage

KEY_NAME = "Secret key"  # keys have no name of their own; OpenAI's default one


class Project(BaseModel):
    object: Literal["organization.project"] = "organization.project"
    id: str
    name: str
    created_at: int
    archived_at: int | None
    status: Literal["active", "archived"]

    @classmethod
    def of(cls, row: ProjectRow) -> Project:
        return cls(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            archived_at=row.archived_at,
            status="active" if row.archived_at is None else "archived",
        )


class CreateProjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="The project's name; unique.")


class ListProjectsResponse(ListPage[Project]):
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(cls, rows: list[ProjectRow], has_more: bool) -> ListProjectsResponse:
        data = [Project.of(r) for r in rows]
        return cls(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )


class ServiceAccountOwner(BaseModel):
    """Whetstone has no users: every key is owned by its project's service account."""

    id: str
    name: str
    created_at: int
    role: Literal["member"] = "member"


class ApiKeyOwner(BaseModel):
    type: Literal["service_account"] = "service_account"
    service_account: ServiceAccountOwner


class ProjectApiKey(BaseModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None = None
    expires_at: int | None = None
    owner: ApiKeyOwner
    owner_project_access: Literal["active", "inactive"]

    @classmethod
    def of(cls, row: ApiKeyRow, project: ProjectRow) -> ProjectApiKey:
        return cls(
            id=row.id,
            name=KEY_NAME,
            redacted_value=redacted(row.prefix),
            created_at=row.created_at,
            owner=ApiKeyOwner(
                service_account=ServiceAccountOwner(
                    id=project.id, name=project.name, created_at=project.created_at
                )
            ),
            owner_project_access="active" if project.archived_at is None else "inactive",
        )


def redacted(prefix: str) -> str:
    """What is shown of a key: its first characters (all that is stored of it)."""
    return f"{prefix}****"


class ListProjectApiKeysResponse(ListPage[ProjectApiKey]):
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(
        cls, rows: list[ApiKeyRow], project: ProjectRow, has_more: bool
    ) -> ListProjectApiKeysResponse:
        data = [ProjectApiKey.of(r, project) for r in rows]
        return cls(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )


class DeleteProjectApiKeyResponse(BaseModel):
    object: Literal["organization.project.api_key.deleted"] = "organization.project.api_key.deleted"
    id: str
    deleted: bool = True
