"""The webhooks' settings (`WHETSTONE_WEBHOOK_*`), a section of `service.settings.Settings`."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    """How the deliverer sends job events, and what a project may register."""

    model_config = SettingsConfigDict(env_prefix="WHETSTONE_", extra="ignore")

    # --- Webhooks: delivery of job events (the scheduler's deliverer) -----------------------
    webhook_retry_seconds: list[NonNegativeInt] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Seconds to wait before each retry of a webhook delivery that failed (no "
        "2xx answer in time), as JSON. The default is Standard Webhooks' schedule: 8 attempts "
        "over about 27.6 hours, the same `webhook-id` on each; after the last one fails the "
        "delivery is given up and the job gets the event `Webhook delivery to URL failed "
        "after N attempts`.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds an endpoint has to answer a delivery (connect and read) before "
        "the attempt counts as failed.",
    )
    webhook_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Deliveries on their way at once, per scheduler process; at most one per "
        "endpoint, so a slow endpoint holds up none of the others.",
    )
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, description="Seconds between two looks for deliveries that are due."
    )
    webhook_allow_private_urls: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private, link-local and other non-public "
        "addresses (receivers on the operator's own network). Off: a URL whose host is, or "
        "resolves to, such an address is refused when the endpoint is created (400 naming "
        "`url`) and again by each delivery, which connects only to the address it checked. "
        "Turn on only where every tenant may reach that network.",
    )
    webhook_max_endpoints_per_project: int = Field(
        default=20,
        ge=1,
        description="Webhook endpoints one project may register; one more answers 400 "
        "`quota_exceeded`.",
    )
    webhook_concurrency_per_project: int = Field(
        default=2,
        ge=1,
        description="Deliveries on their way at once to one project's endpoints, per "
        "scheduler process, so that a project's slow endpoints keep the rest of "
        "`webhook_concurrency` free for the others.",
    )
