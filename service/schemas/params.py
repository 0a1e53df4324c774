"""Query parameters every list endpoint shares, in OpenAI's form."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

Limit = Annotated[int, Query(ge=1, le=100)]
"""`limit`: objects per page, 1 to 100."""

After = Annotated[str | None, AfterValidator(lambda cursor: cursor or None)]
"""`after`: the id of the last object of the previous page; empty (`after=`, what a client
that fills its query from a blank cursor sends) is the first page, as no `after` at all."""
