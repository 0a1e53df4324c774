"""`python -m service.scheduler`: the scheduler as its own process (e.g. a Deployment).

Reads the same `WHETSTONE_*` settings as the API; stops cleanly on SIGTERM or Ctrl-C.
Running attempts are left running: the next scheduler re-adopts them.
"""

from __future__ import annotations

import logging
import signal
import threading

from contracts.store import open_store
from service.db.engine import make_engine, make_sessionmaker
from service.db.migrate import upgrade
from service.scheduler.runner import Scheduler
from service.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(message)s")
    settings = Settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    store = open_store(settings.resolved_object_store_url, settings.s3_endpoint_url)
    scheduler = Scheduler(settings, make_sessionmaker(engine), store)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        scheduler.run_forever(stop)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
