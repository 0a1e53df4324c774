"""`python -m service.scheduler`: the scheduler as its own process (e.g. a Deployment).

Reads the same `WHETSTONE_*` settings as the API; stops cleanly on SIGTERM or Ctrl-C.
Running attempts are left running: the next scheduler re-adopts them.
"""

from __future__ import annotations

import logging
import signal
import threading

from service.runtime import Runtime
from service.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(message)s")
    with Runtime(Settings()) as runtime:
        scheduler = runtime.scheduler()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        scheduler.run_forever(stop)


if __name__ == "__main__":
    main()
