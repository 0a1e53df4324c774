"""Model objects (`/v1/models`)."""

from __future__ import annotations

from ._base import APIObject


class Model(APIObject):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelDeleted(APIObject):
    id: str
    object: str = "model"
    deleted: bool
