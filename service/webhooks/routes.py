"""`/v1/webhook_endpoints` (a Whetstone extension, in the shape of the `openai` package's
`client.webhooks`): create, list, retrieve and delete the endpoints told when jobs end."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import SessionDep, SettingsDep
from service.keys.dependencies import ProjectDep
from service.schemas.params import After, Limit
from service.webhooks import endpoints
from service.webhooks import repository as repo
from service.webhooks.schemas import (
    CreateWebhookEndpointRequest,
    DeletedWebhookEndpoint,
    ListWebhookEndpointsResponse,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
)

router = APIRouter(tags=["Webhooks"])

ENDPOINTS = "/webhook_endpoints"
ENDPOINT = ENDPOINTS + "/{webhook_endpoint_id}"


@router.post(
    ENDPOINTS, operation_id="createWebhookEndpoint", response_model=WebhookEndpointWithSecret
)
def create(
    body: CreateWebhookEndpointRequest,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookEndpointWithSecret:
    """Register an endpoint; the answer holds its signing secret, shown this once. Its URL
    must reach a public address (unless the operator allows private ones)."""
    row = endpoints.create(
        session,
        project,
        body,
        allow_private=settings.webhook_allow_private_urls,
        max_endpoints=settings.webhook_max_endpoints_per_project,
    )
    return WebhookEndpointWithSecret.of_new(row)


@router.get(
    ENDPOINTS, operation_id="listWebhookEndpoints", response_model=ListWebhookEndpointsResponse
)
def list_(
    project: ProjectDep, session: SessionDep, after: After = None, limit: Limit = 20
) -> ListWebhookEndpointsResponse:
    """The project's endpoints, newest first."""
    page = repo.list_endpoints(session, project.id, after=after, limit=limit)
    return ListWebhookEndpointsResponse.of(page.items, page.has_more)


@router.get(ENDPOINT, operation_id="retrieveWebhookEndpoint", response_model=WebhookEndpoint)
def retrieve(webhook_endpoint_id: str, project: ProjectDep, session: SessionDep) -> WebhookEndpoint:
    return WebhookEndpoint.of(endpoints.get(session, project, webhook_endpoint_id))


@router.delete(
    ENDPOINT, operation_id="deleteWebhookEndpoint", response_model=DeletedWebhookEndpoint
)
def delete(
    webhook_endpoint_id: str, project: ProjectDep, session: SessionDep
) -> DeletedWebhookEndpoint:
    """Delete an endpoint; deliveries it was still owed are dropped."""
    return DeletedWebhookEndpoint(
        id=endpoints.delete(session, project, webhook_endpoint_id), deleted=True
    )
