"""Models: `Model`, its list and the delete answer, as OpenAI's spec has them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

BASE_MODEL_OWNER = "whetstone"


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ListModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class DeleteModelResponse(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool
