"""`client.models`: list, retrieve and delete models; `client.models.aliases`: the project's
other names for its models (Whetstone's extension)."""

from __future__ import annotations

from typing import Any

from .._http import AsyncAPI, SyncAPI
from ..pagination import AsyncPage, AsyncPaginator, SyncPage
from ..types.models import Model, ModelAlias, ModelAliasDeleted, ModelDeleted
from ._paths import segment

ALIASES = "models/aliases"


class Aliases:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(self, *, name: str, model: str) -> ModelAlias:
        """Make `name` answer as `model`, or point the alias `name` at `model`."""
        return self._api.post(ALIASES, ModelAlias, json={"name": name, "model": model})

    def list(self, *, after: str | None = None, limit: int | None = None) -> SyncPage[ModelAlias]:
        return self._list({"after": after, "limit": limit})

    def _list(self, params: dict[str, Any]) -> SyncPage[ModelAlias]:
        body = self._api.request("GET", ALIASES, params=params).json()
        return SyncPage(body, ModelAlias, params, self._list)

    def retrieve(self, name: str) -> ModelAlias:
        return self._api.get(f"{ALIASES}/{segment(name)}", ModelAlias)

    def delete(self, name: str) -> ModelAliasDeleted:
        """Delete the alias; the model stays."""
        return self._api.delete(f"{ALIASES}/{segment(name)}", ModelAliasDeleted)


class AsyncAliases:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def create(self, *, name: str, model: str) -> ModelAlias:
        return await self._api.post(ALIASES, ModelAlias, json={"name": name, "model": model})

    def list(
        self, *, after: str | None = None, limit: int | None = None
    ) -> AsyncPaginator[ModelAlias]:
        return AsyncPaginator(self._list, {"after": after, "limit": limit})

    async def _list(self, params: dict[str, Any]) -> AsyncPage[ModelAlias]:
        body = (await self._api.request("GET", ALIASES, params=params)).json()
        return AsyncPage(body, ModelAlias, params, self._list)

    async def retrieve(self, name: str) -> ModelAlias:
        return await self._api.get(f"{ALIASES}/{segment(name)}", ModelAlias)

    async def delete(self, name: str) -> ModelAliasDeleted:
        return await self._api.delete(f"{ALIASES}/{segment(name)}", ModelAliasDeleted)


class Models:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api
        self.aliases = Aliases(api)

    def list(self) -> SyncPage[Model]:
        """Base models of the registry and this project's fine-tuned models."""
        return self._list({})

    def _list(self, params: dict[str, Any]) -> SyncPage[Model]:
        body = self._api.request("GET", "models", params=params).json()
        return SyncPage(body, Model, params, self._list)

    def retrieve(self, model: str) -> Model:
        return self._api.get(f"models/{segment(model)}", Model)

    def delete(self, model: str) -> ModelDeleted:
        """Delete one of this project's fine-tuned models."""
        return self._api.delete(f"models/{segment(model)}", ModelDeleted)


class AsyncModels:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api
        self.aliases = AsyncAliases(api)

    def list(self) -> AsyncPaginator[Model]:
        """Base models of the registry and this project's fine-tuned models."""
        return AsyncPaginator(self._list, {})

    async def _list(self, params: dict[str, Any]) -> AsyncPage[Model]:
        body = (await self._api.request("GET", "models", params=params)).json()
        return AsyncPage(body, Model, params, self._list)

    async def retrieve(self, model: str) -> Model:
        return await self._api.get(f"models/{segment(model)}", Model)

    async def delete(self, model: str) -> ModelDeleted:
        """Delete one of this project's fine-tuned models."""
        return await self._api.delete(f"models/{segment(model)}", ModelDeleted)
