"""`whetstone webhooks ...`: the endpoints told when this project's jobs end."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from . import output
from .state import JsonFlag, state

app = typer.Typer(
    help="Webhook endpoints: URLs told when this project's jobs succeed, fail or are cancelled.",
    no_args_is_help=True,
)

EVENTS_HELP = (
    "Events to send (repeat, or separate with commas): fine_tuning.job.succeeded, "
    "fine_tuning.job.failed, fine_tuning.job.cancelled."
)
FIELDS: list[output.Field] = [
    ("id", output.text),
    ("url", output.text),
    ("name", output.text),
    ("event_types", lambda v: ", ".join(v or [])),
    ("created_at", output.timestamp),
]


def _events(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [e.strip() for value in values for e in value.split(",") if e.strip()]


@app.command()
def create(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="Where deliveries are POSTed (http:// or https://).")],
    events: Annotated[
        list[str] | None, typer.Option("--events", help=EVENTS_HELP, show_default="all")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name.", show_default="the URL")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Register an endpoint and print its signing secret (shown this once)."""
    st = state(ctx, json_out)
    created = st.client().webhooks.create(url=url, event_types=_events(events), name=name)
    if st.json:
        output.print_json(st, output.dump(created))
        return
    output.show_one(st, created, FIELDS)
    st.out.print(
        f"signing secret (shown only now; verifies every delivery): "
        f"[bold]{escape(created.signing_secret)}[/bold]"
    )


@app.command("list")
def list_endpoints(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List this project's endpoints, newest first."""
    st = state(ctx, json_out)
    columns = [
        ("ID", lambda w: w.id),
        ("URL", lambda w: w.url),
        ("EVENTS", lambda w: ", ".join(w.event_types)),
        ("CREATED", lambda w: output.minute(w.created_at)),
    ]
    output.show_many(st, list(st.client().webhooks.list()), columns)


@app.command()
def delete(ctx: typer.Context, webhook_endpoint_id: str, json_out: JsonFlag = False) -> None:
    """Delete an endpoint; what it was still owed is not sent."""
    st = state(ctx, json_out)
    deleted = st.client().webhooks.delete(webhook_endpoint_id)
    if st.json:
        output.print_json(st, output.dump(deleted))
    else:
        st.out.print(Text(f"deleted {deleted.id}"))
