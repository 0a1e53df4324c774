"""The API fixtures of tests/unit/service (an app over a fresh data folder, two projects'
keys), for the service's tests that also start servers, processes or threads."""

from tests.unit.service.conftest import api, settings

__all__ = ["api", "settings"]
