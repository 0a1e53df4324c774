"""`python -m service`: serve the API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.http_limits import capped_http
from service.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=capped_http(settings.max_header_bytes),
    )


if __name__ == "__main__":
    main()
