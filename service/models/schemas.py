"""Models: `Model`, its list and the delete answer, as OpenAI's spec has them; and model
aliases (`ModelAlias`, Whetstone's extension)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from service.db.tables import ModelAlias as AliasRow

BASE_MODEL_OWNER = "whetstone"


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    alias_for: str | None = Field(
        default=None,
        description="Whetstone extension, only on an alias: the model this name answers as.",
    )


class ListModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class DeleteModelResponse(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool


class CreateModelAliasRequest(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=255,
        description="The alias, e.g. an OpenAI fine-tuned model's name. Letters, digits and "
        "`._:-`; never the name of a base model or a fine-tuned model.",
        examples=["ft:gpt-4o-mini-2024-07-18:acme::AbC123"],
    )
    model: str = Field(
        min_length=1,
        max_length=255,
        description="What the alias answers as: a base model or a fine-tuned or checkpoint "
        "model this project owns or was granted.",
    )


class ModelAlias(BaseModel):
    id: str = Field(description="The alias's name.")
    object: Literal["model.alias"] = "model.alias"
    model: str = Field(description="The model the alias answers as.")
    created: int
    updated: int = Field(description="When the alias was last pointed at a model.")

    @classmethod
    def of(cls, row: AliasRow) -> ModelAlias:
        return cls(id=row.name, model=row.model, created=row.created_at, updated=row.updated_at)


class ListModelAliasesResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelAlias]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool

    @classmethod
    def of(cls, rows: list[AliasRow], has_more: bool) -> ListModelAliasesResponse:
        data = [ModelAlias.of(row) for row in rows]
        return cls(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )


class DeleteModelAliasResponse(BaseModel):
    id: str
    object: Literal["model.alias"] = "model.alias"
    deleted: bool
