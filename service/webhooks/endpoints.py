"""A project's webhook endpoints: create (checked, with a fresh secret), list, delete."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from service.db.tables import Project, WebhookEndpoint
from service.errors import InvalidRequest, not_found
from service.ids import now, random_part
from service.limits import quota_exceeded
from service.webhooks import repository as repo
from service.webhooks import targets
from service.webhooks.events import EVENT_TYPES, new_secret
from service.webhooks.schemas import CreateWebhookEndpointRequest

MAX_URL_LENGTH = 2048


def create(
    session: Session,
    project: Project,
    request: CreateWebhookEndpointRequest,
    *,
    allow_private: bool = False,
    max_endpoints: int | None = None,
    resolver: targets.Resolver = targets.resolve,
) -> WebhookEndpoint:
    """A new endpoint; its URL must reach a public address unless `allow_private`
    (`WHETSTONE_WEBHOOK_ALLOW_PRIVATE_URLS`), and the project may have `max_endpoints`."""
    url = _checked_url(request.url)
    if not allow_private:
        _check_target(url, resolver)
    types = _checked_event_types(request.event_types)
    if max_endpoints is not None and repo.count_endpoints(session, project.id) >= max_endpoints:
        raise quota_exceeded(
            f"This project has {max_endpoints} webhook endpoints, the most it may have: "
            "delete one to add another",
            "webhook_max_endpoints_per_project",
            param="url",
        )
    when = now()
    return repo.add_endpoint(
        session,
        WebhookEndpoint(
            id=f"we_{random_part()}", project_id=project.id, name=request.name or url, url=url,
            event_types=types, secret=new_secret(), created_at=when, updated_at=when,
        ),
    )  # fmt: skip


def get(session: Session, project: Project, endpoint_id: str) -> WebhookEndpoint:
    row = repo.get_endpoint(session, project.id, endpoint_id)
    if row is None:
        raise not_found("webhook_endpoint", endpoint_id, param="webhook_endpoint_id")
    return row


def delete(session: Session, project: Project, endpoint_id: str) -> str:
    """Delete the endpoint; what it was still owed is not sent."""
    row = get(session, project, endpoint_id)
    repo.delete_endpoint(session, row)
    return endpoint_id


def _checked_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"Invalid webhook URL '{url}': expected http://HOST/... or https://HOST/....",
            param="url",
            code="invalid_url",
        )
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"Webhook URL is {len(url)} characters long; at most {MAX_URL_LENGTH}.",
            param="url",
            code="invalid_url",
        )
    return url


def _check_target(url: str, resolver: targets.Resolver) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        targets.check_host(host, port, resolver)
    except (ValueError, targets.RefusedTarget) as e:
        raise InvalidRequest(
            f"Invalid webhook URL '{url}': {e}. Webhooks are sent to public addresses only "
            "(the operator may allow private ones: WHETSTONE_WEBHOOK_ALLOW_PRIVATE_URLS).",
            param="url",
            code="invalid_url",
        ) from e


def _checked_event_types(types: list[str] | None) -> list[str]:
    if types is None:
        return list(EVENT_TYPES)
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown or not types:
        raise InvalidRequest(
            f"Unknown event type(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"Whetstone sends {', '.join(EVENT_TYPES)}.",
            param="event_types",
            code="invalid_event_type",
        )
    return list(dict.fromkeys(types))
