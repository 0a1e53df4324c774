"""`python -m service`: serve the API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.http_limits import capped_http
from service.logs import configure_logging, uvicorn_log_config
from service.settings import Settings


def main() -> None:
    settings = Settings()
    if settings.log_format == "json":
        configure_logging("json")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(settings.log_format),
        http=capped_http(settings.max_header_bytes),
    )


if __name__ == "__main__":
    main()
