"""Rendering: rich tables on a terminal, plain aligned text when piped, JSON for scripts.

Piped (stdout not a terminal) there is no box drawing and no wrapping: a header line, then
one line per row, columns two spaces apart and never cut, so `grep`, `awk` and `cut` see
whole ids; `--json` is there wherever a table is.
"""

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
    "pausing": "yellow",
    "paused": "yellow",
    "running": "cyan",
    "queued": "blue",
    "validating_files": "blue",
}


def timestamp(value: int | None) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def minute(value: int | None) -> str:
    """A list's CREATED column: to the minute, so that lists fit 80 columns more often
    (`get` and `--json` give the second)."""
    if not value:
        return "-"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _cell(value: Cell) -> Text:
    """Table cells are shown as they are: never read as markup."""
    return value if isinstance(value, Text) else Text(value)


def text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def loss(value: float | None) -> str:
    """A loss as every table shows it: 4 decimals (a trainer reports 17 digits)."""
    return "-" if value is None else f"{value:.4f}"


def dump(obj: BaseModel) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_none=False)


def print_json(st: State, value: object) -> None:
    st.out.print_json(json.dumps(value), highlight=st.out.is_terminal)


def plain_text(value: Cell) -> str:
    """A cell as one line of plain text."""
    raw = value.plain if isinstance(value, Text) else value
    return " ".join(raw.splitlines()) if "\n" in raw or "\r" in raw else raw


def aligned(rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Rows as lines of columns padded to their widest cell, two spaces apart (the last
    column unpadded)."""
    cells = [[plain_text(c) for c in row] for row in rows]
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def print_plain(st: State, lines: Iterable[str]) -> None:
    for line in lines:
        st.out.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def piped(st: State) -> bool:
    """Output to a pipe or a file: plain text, no tables."""
    return not st.out.is_terminal


def show_table(
    st: State, headers: Sequence[str], rows: Sequence[Sequence[Cell]], title: Cell | None = None
) -> None:
    """A table: rich on a terminal, aligned plain text when piped."""
    if piped(st):
        print_plain(st, ([plain_text(title)] if title else []) + aligned([headers, *rows]))
        return
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(c) for c in row))
    st.out.print(table)


def show_one(st: State, obj: BaseModel, fields: Sequence[Field]) -> None:
    """One object: JSON, or a two-column table of its main fields."""
    if st.json:
        print_json(st, dump(obj))
        return
    data = dict(obj)
    if piped(st):
        print_plain(st, aligned([(name, render(data.get(name))) for name, render in fields]))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
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
    show_table(
        st,
        [header for header, _ in columns],
        [[r(item) for _, r in columns] for item in rows],
        title,
    )
    if not rows:
        st.err.print("[dim](none)[/dim]")
