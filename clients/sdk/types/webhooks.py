"""Webhook endpoint objects (`/v1/webhook_endpoints`, a Whetstone extension shaped as the
`openai` package's `client.webhooks`)."""

from __future__ import annotations

from ._base import APIObject


class WebhookEndpoint(APIObject):
    id: str
    object: str = "webhook_endpoint"
    created_at: int
    updated_at: int | None = None
    name: str
    url: str
    event_types: list[str]
    signing_secret_hint: str | None = None


class WebhookEndpointWithSecret(WebhookEndpoint):
    signing_secret: str
    """`whsec_...`: shown only in the answer to create; it verifies every delivery."""


class WebhookEndpointDeleted(APIObject):
    id: str
    object: str = "webhook_endpoint.deleted"
    deleted: bool
