"""Cursor pagination over `(created_at, id)`: `after` is the id of the last object seen.

Keyset, not offset: a page costs the same wherever it starts, and objects created while a
client pages do not shift the pages it has not read yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")
Order = Literal["asc", "desc"]


class CursorNotFound(LookupError):
    """The `after` id names no object visible to this query."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def paginate(
    session: Session,
    stmt: Select[T],
    *,
    created_at: InstrumentedAttribute[int],
    id_: InstrumentedAttribute[str],
    after: str | None,
    limit: int,
    order: Order = "desc",
) -> Page[T]:
    """Run `stmt` (already filtered to what the caller may see) one page at a time."""
    if after is not None:
        cursor: Any = session.execute(
            stmt.with_only_columns(created_at, id_).where(id_ == after)
        ).first()
        if cursor is None:
            raise CursorNotFound(after)
        c_created, c_id = cursor
        if order == "desc":
            stmt = stmt.where(
                or_(created_at < c_created, and_(created_at == c_created, id_ < c_id))
            )
        else:
            stmt = stmt.where(
                or_(created_at > c_created, and_(created_at == c_created, id_ > c_id))
            )
    if order == "desc":
        stmt = stmt.order_by(created_at.desc(), id_.desc())
    else:
        stmt = stmt.order_by(created_at.asc(), id_.asc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return Page(items=rows[:limit], has_more=len(rows) > limit)
