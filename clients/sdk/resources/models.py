"""`client.models`: list, retrieve and delete models; `client.models.aliases`: the project's
other names for its models (Whetstone's extension)."""

from __future__ import annotations

from .._core import Call, parsed
from .._resource import A, Resource, endpoint, listing
from ..pagination import Listing
from ..types.models import Model, ModelAlias, ModelAliasDeleted, ModelDeleted
from ._paths import segment

ALIASES = "models/aliases"


class Aliases(Resource[A]):
    @endpoint
    def create(self, *, name: str, model: str) -> Call[ModelAlias]:
        """Make `name` answer as `model`, or point the alias `name` at `model`."""
        return Call("POST", ALIASES, parsed(ModelAlias), json={"name": name, "model": model})

    @listing
    def list(self, *, after: str | None = None, limit: int | None = None) -> Listing[ModelAlias]:
        return Listing(ALIASES, ModelAlias, {"after": after, "limit": limit})

    @endpoint
    def retrieve(self, name: str) -> Call[ModelAlias]:
        return Call("GET", f"{ALIASES}/{segment(name)}", parsed(ModelAlias))

    @endpoint
    def delete(self, name: str) -> Call[ModelAliasDeleted]:
        """Delete the alias; the model stays."""
        return Call("DELETE", f"{ALIASES}/{segment(name)}", parsed(ModelAliasDeleted))


class Models(Resource[A]):
    def __init__(self, api: A) -> None:
        super().__init__(api)
        self.aliases = Aliases(api)

    @listing
    def list(self) -> Listing[Model]:
        """Base models of the registry and this project's fine-tuned models."""
        return Listing("models", Model)

    @endpoint
    def retrieve(self, model: str) -> Call[Model]:
        return Call("GET", f"models/{segment(model)}", parsed(Model))

    @endpoint
    def delete(self, model: str) -> Call[ModelDeleted]:
        """Delete one of this project's fine-tuned models."""
        return Call("DELETE", f"models/{segment(model)}", parsed(ModelDeleted))
