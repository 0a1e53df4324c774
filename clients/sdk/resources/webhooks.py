"""`client.webhooks`: the endpoints told when jobs end (create, list, retrieve, delete)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core import Call, parsed
from .._resource import A, Resource, endpoint, listing
from ..pagination import Listing
from ..types.webhooks import WebhookEndpoint, WebhookEndpointDeleted, WebhookEndpointWithSecret
from ._paths import segment

PATH = "webhook_endpoints"


class Webhooks(Resource[A]):
    @endpoint
    def create(
        self, *, url: str, event_types: Sequence[str] | None = None, name: str | None = None
    ) -> Call[WebhookEndpointWithSecret]:
        """Register an endpoint (default: every event); keep its `signing_secret`, it is
        shown only here."""
        body: dict[str, Any] = {"url": url}
        if event_types is not None:
            body["event_types"] = list(event_types)
        if name is not None:
            body["name"] = name
        return Call("POST", PATH, parsed(WebhookEndpointWithSecret), json=body)

    @listing
    def list(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Listing[WebhookEndpoint]:
        """The project's endpoints, newest first."""
        return Listing(PATH, WebhookEndpoint, {"after": after, "limit": limit})

    @endpoint
    def retrieve(self, webhook_endpoint_id: str) -> Call[WebhookEndpoint]:
        return Call("GET", f"{PATH}/{segment(webhook_endpoint_id)}", parsed(WebhookEndpoint))

    @endpoint
    def delete(self, webhook_endpoint_id: str) -> Call[WebhookEndpointDeleted]:
        path = f"{PATH}/{segment(webhook_endpoint_id)}"
        return Call("DELETE", path, parsed(WebhookEndpointDeleted))
