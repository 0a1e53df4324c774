"""`client.models`: list, retrieve and delete models."""

from __future__ import annotations

from typing import Any

from .._http import AsyncAPI, SyncAPI
from ..pagination import AsyncPage, AsyncPaginator, SyncPage
from ..types.models import Model, ModelDeleted
from ._paths import segment


class Models:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

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
