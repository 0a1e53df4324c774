"""`client.webhooks`: the endpoints told when jobs end (create, list, retrieve, delete)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._http import AsyncAPI, SyncAPI
from ..pagination import AsyncPage, AsyncPaginator, SyncPage
from ..types.webhooks import WebhookEndpoint, WebhookEndpointDeleted, WebhookEndpointWithSecret
from ._paths import segment

PATH = "webhook_endpoints"


def _create_body(url: str, event_types: Sequence[str] | None, name: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if event_types is not None:
        body["event_types"] = list(event_types)
    if name is not None:
        body["name"] = name
    return body


class Webhooks:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    def create(
        self, *, url: str, event_types: Sequence[str] | None = None, name: str | None = None
    ) -> WebhookEndpointWithSecret:
        """Register an endpoint (default: every event); keep its `signing_secret`, it is
        shown only here."""
        body = _create_body(url, event_types, name)
        return self._api.post(PATH, WebhookEndpointWithSecret, json=body)

    def list(
        self, *, after: str | None = None, limit: int | None = None
    ) -> SyncPage[WebhookEndpoint]:
        """The project's endpoints, newest first."""
        return self._list({"after": after, "limit": limit})

    def _list(self, params: dict[str, Any]) -> SyncPage[WebhookEndpoint]:
        body = self._api.request("GET", PATH, params=params).json()
        return SyncPage(body, WebhookEndpoint, params, self._list)

    def retrieve(self, webhook_endpoint_id: str) -> WebhookEndpoint:
        return self._api.get(f"{PATH}/{segment(webhook_endpoint_id)}", WebhookEndpoint)

    def delete(self, webhook_endpoint_id: str) -> WebhookEndpointDeleted:
        return self._api.delete(f"{PATH}/{segment(webhook_endpoint_id)}", WebhookEndpointDeleted)


class AsyncWebhooks:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    async def create(
        self, *, url: str, event_types: Sequence[str] | None = None, name: str | None = None
    ) -> WebhookEndpointWithSecret:
        """Register an endpoint (default: every event); keep its `signing_secret`, it is
        shown only here."""
        body = _create_body(url, event_types, name)
        return await self._api.post(PATH, WebhookEndpointWithSecret, json=body)

    def list(
        self, *, after: str | None = None, limit: int | None = None
    ) -> AsyncPaginator[WebhookEndpoint]:
        """The project's endpoints, newest first."""
        return AsyncPaginator(self._list, {"after": after, "limit": limit})

    async def _list(self, params: dict[str, Any]) -> AsyncPage[WebhookEndpoint]:
        body = (await self._api.request("GET", PATH, params=params)).json()
        return AsyncPage(body, WebhookEndpoint, params, self._list)

    async def retrieve(self, webhook_endpoint_id: str) -> WebhookEndpoint:
        return await self._api.get(f"{PATH}/{segment(webhook_endpoint_id)}", WebhookEndpoint)

    async def delete(self, webhook_endpoint_id: str) -> WebhookEndpointDeleted:
        path = f"{PATH}/{segment(webhook_endpoint_id)}"
        return await self._api.delete(path, WebhookEndpointDeleted)
