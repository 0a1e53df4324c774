from __future__ import annotations

from collections.abc import Iterator

import pytest

from .standin import StandIn


@pytest.fixture()
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    try:
        yield server
    finally:
        server.stop()
