"""Shapes shared by every resource: lists and errors."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class ListPage(BaseModel, Generic[T]):
    """OpenAI's cursor page: `object: "list"`, `data`, `has_more`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


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
