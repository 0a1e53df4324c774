"""`whetstone models ...`: list, get and delete models; give them other names (aliases)."""

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
    ("alias_for", output.text),
]


@app.command("list")
def list_models(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List base models and this project's fine-tuned models."""
    st = state(ctx, json_out)
    columns = [
        ("ID", lambda m: m.id),
        ("OWNED BY", lambda m: m.owned_by),
        ("CREATED", lambda m: output.minute(m.created)),
        ("ALIAS FOR", lambda m: m.alias_for or ""),
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


ALIAS_FIELDS: list[output.Field] = [
    ("id", output.text),
    ("model", output.text),
    ("created", output.timestamp),
    ("updated", output.timestamp),
]


@app.command()
def alias(ctx: typer.Context, name: str, model: str, json_out: JsonFlag = False) -> None:
    """Make NAME answer as MODEL for this project (e.g. an OpenAI fine-tuned model's name ->
    the model its migrated job made), or point the alias NAME at MODEL (after a retrain)."""
    st = state(ctx, json_out)
    output.show_one(st, st.client().models.aliases.create(name=name, model=model), ALIAS_FIELDS)


@app.command()
def aliases(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List this project's aliases and the models they answer as."""
    st = state(ctx, json_out)
    columns = [
        ("ALIAS", lambda a: a.id),
        ("MODEL", lambda a: a.model),
        ("UPDATED", lambda a: output.minute(a.updated)),
    ]
    output.show_many(st, list(st.client().models.aliases.list()), columns)


@app.command()
def unalias(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """Delete the alias NAME (the model stays)."""
    st = state(ctx, json_out)
    deleted = st.client().models.aliases.delete(name)
    if st.json:
        output.print_json(st, output.dump(deleted))
    else:
        st.out.print(Text(f"deleted alias {deleted.id}"))
