"""Logging for every process of the control plane: text for people, or JSON lines.

What a line is about lives in three context variables: `request_id` (set by the API's
request-id middleware), `project` (the caller's project id, set by authentication) and
`job_id` (set by the middleware from a job's URL, and by the scheduler around the work on
one job, `log_context`). `configure_logging("json")` writes one JSON object per line with
those that are set; the text format leaves them out.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
project: ContextVar[str | None] = ContextVar("project", default=None)

LogFormat = Literal["text", "json"]
CONTEXT = {"request_id": request_id, "job_id": job_id, "project": project}
CHATTY = ("httpx", "alembic")  # a line per request or migration step: not for people


@contextmanager
def log_context(*, job: str | None = None, project_id: str | None = None) -> Iterator[None]:
    """The lines logged inside name this job and project (the scheduler's per-job work)."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []
    for var, value in ((job_id, job), (project, project_id)):
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the context, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in CONTEXT.items():
            value = var.get()
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(
    log_format: LogFormat, text_format: str = "%(asctime)s %(message)s", **text_options: Any
) -> None:
    """Root logging at INFO on stderr, as text (`text_format`) or JSON lines; replaces any
    handler already there, so that every library's lines take the same format."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(text_format, **text_options))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """What `uvicorn.run(log_config=...)` gets: its own config for text, None for JSON (its
    loggers then pass their lines, access log included, to the JSON root handler)."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
