"""Shapes shared by every resource: lists and errors."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ListPage(BaseModel, Generic[T]):
    """OpenAI's cursor page: `object: "list"`, `data`, `has_more`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


def _is_none(value: Any) -> bool:
    return value is None


def _without_null(schema: dict[str, Any]) -> None:
    """`anyOf: [X, null]` -> `X`: the field may be absent, never null."""
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)


def omitted_if_none(description: str | None = None) -> Any:
    """An optional field left out of the JSON when it is None: OpenAI's schema types it
    without null (optional, not nullable), so a strict client refuses a null there."""
    return Field(
        default=None,
        description=description,
        exclude_if=_is_none,
        json_schema_extra=_without_null,
    )


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request; `param` names the field."},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key."},
    404: {"model": ErrorResponse, "description": "No such object in the caller's project."},
}
