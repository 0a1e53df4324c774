"""`python -m service.scheduler`: the scheduler as its own process (e.g. a Deployment).

Reads the same `WHETSTONE_*` settings as the API; stops cleanly on SIGTERM or Ctrl-C.
Running attempts are left running: the next scheduler re-adopts them. With
`WHETSTONE_METRICS_PORT` it serves its own `/metrics` there (`service.metrics`).
"""

from __future__ import annotations

import signal
import threading

from service.logs import configure_logging
from service.metrics import REGISTRY, MetricsServer
from service.runtime import Runtime
from service.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_format, "%(asctime)s scheduler %(message)s")
    with Runtime(settings) as runtime:
        scheduler = runtime.scheduler()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        served = _serve_metrics(settings)
        try:
            scheduler.run_forever(stop)
        finally:
            if served is not None:
                served.stop()


def _serve_metrics(settings: Settings) -> MetricsServer | None:
    """This process's own metrics (queue wait, the ends of attempts it saw) on
    `WHETSTONE_METRICS_PORT`; the database-wide ones are the API's."""
    if settings.metrics_port is None:
        return None
    return MetricsServer(REGISTRY, settings.host, settings.metrics_port, settings.metrics_token)


if __name__ == "__main__":
    main()
