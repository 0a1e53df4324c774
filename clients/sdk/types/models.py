"""Model objects (`/v1/models`) and model aliases (`/v1/models/aliases`, Whetstone's)."""

from __future__ import annotations

from ._base import APIObject


class Model(APIObject):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    alias_for: str | None = None
    """Only on an alias: the model it answers as."""


class ModelDeleted(APIObject):
    id: str
    object: str = "model"
    deleted: bool


class ModelAlias(APIObject):
    id: str
    """The alias's name."""
    object: str = "model.alias"
    model: str
    created: int
    updated: int


class ModelAliasDeleted(APIObject):
    id: str
    object: str = "model.alias"
    deleted: bool
