"""Webhook endpoints (a Whetstone extension): the shapes of the `openai` package's
`client.webhooks` (`WebhookEndpoint`, `WebhookEndpointWithSecret`, `WebhookEndpointList`,
`DeletedWebhookEndpoint`), so that client works against `/v1/webhook_endpoints` too."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.db.tables import WebhookEndpoint as EndpointRow
from service.schemas.common import ListPage
from service.webhooks.events import EVENT_TYPES, secret_hint


class CreateWebhookEndpointRequest(BaseModel):
    url: str = Field(description="Where deliveries are POSTed: `http://` or `https://`.")
    event_types: list[str] | None = Field(
        default=None,
        description=f"Events to send, among {', '.join(EVENT_TYPES)}; default all of them.",
    )
    name: str | None = Field(
        default=None, max_length=255, description="A name for people; default the URL."
    )


class WebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    created_at: int
    updated_at: int
    name: str
    url: str
    event_types: list[str]
    signing_secret_hint: str

    @classmethod
    def of(cls, row: EndpointRow) -> WebhookEndpoint:
        return cls(
            id=row.id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            name=row.name,
            url=row.url,
            event_types=list(row.event_types),
            signing_secret_hint=secret_hint(row.secret),
        )


class WebhookEndpointWithSecret(WebhookEndpoint):
    """The answer to create: the only time the signing secret is shown."""

    signing_secret: str

    @classmethod
    def of_new(cls, row: EndpointRow) -> WebhookEndpointWithSecret:
        return cls(**WebhookEndpoint.of(row).model_dump(), signing_secret=row.secret)


class ListWebhookEndpointsResponse(ListPage[WebhookEndpoint]):
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(cls, rows: list[EndpointRow], has_more: bool) -> ListWebhookEndpointsResponse:
        data = [WebhookEndpoint.of(r) for r in rows]
        first, last = (data[0].id, data[-1].id) if data else (None, None)
        return cls(data=data, has_more=has_more, first_id=first, last_id=last)


class DeletedWebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool
