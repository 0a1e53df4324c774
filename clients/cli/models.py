"""`whetstone models ...`: list, get and delete models."""

from __future__ import annotations

import typer
from rich.text import Text

from . import output
from .state import JsonFlag, state

app = typer.Typer(help="Base models and fine-tuned models.", no_args_is_help=True)

FIELDS: list[output.Field] = [
    ("id", output.text),
    ("owned_by", output.text),
    ("created", output.timestamp),
]


@app.command("list")
def list_models(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List base models and this project's fine-tuned models."""
    st = state(ctx, json_out)
    columns = [
        ("ID", lambda m: m.id),
        ("OWNED BY", lambda m: m.owned_by),
        ("CREATED", lambda m: output.minute(m.created)),
    ]
    output.show_many(st, list(st.client().models.list()), columns)


@app.command()
def get(ctx: typer.Context, model: str, json_out: JsonFlag = False) -> None:
    """Show one model."""
    st = state(ctx, json_out)
    output.show_one(st, st.client().models.retrieve(model), FIELDS)


@app.command()
def delete(ctx: typer.Context, model: str, json_out: JsonFlag = False) -> None:
    """Delete one of this project's fine-tuned models."""
    st = state(ctx, json_out)
    deleted = st.client().models.delete(model)
    if st.json:
        output.print_json(st, output.dump(deleted))
    else:
        st.out.print(Text(f"deleted {deleted.id}"))
