"""Rendering: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

from .state import State

M = TypeVar("M", bound=BaseModel)

Cell = str | Text
Field = tuple[str, Callable[[Any], Cell]]

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "paused": "yellow",
    "running": "cyan",
    "queued": "blue",
    "validating_files": "blue",
}


def timestamp(value: int | None) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _cell(value: Cell) -> Text:
    """Table cells are shown as they are: never read as markup."""
    return value if isinstance(value, Text) else Text(value)


def text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def dump(obj: BaseModel) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_none=False)


def print_json(st: State, value: object) -> None:
    st.out.print_json(json.dumps(value), highlight=st.out.is_terminal)


def show_one(st: State, obj: BaseModel, fields: Sequence[Field]) -> None:
    """One object: JSON, or a two-column table of its main fields."""
    if st.json:
        print_json(st, dump(obj))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    data = dict(obj)
    for name, render in fields:
        table.add_row(name, _cell(render(data.get(name))))
    st.out.print(table)


def show_many(
    st: State,
    items: Iterable[M],
    columns: Sequence[tuple[str, Callable[[M], Cell]]],
    title: str | None = None,
) -> None:
    """A list: a JSON array, or a table with one row per item."""
    rows = list(items)
    if st.json:
        print_json(st, [dump(item) for item in rows])
        return
    table = Table(title=title)
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for item in rows:
        table.add_row(*(_cell(render(item)) for _, render in columns))
    st.out.print(table)
    if not rows:
        st.err.print("[dim](none)[/dim]")
