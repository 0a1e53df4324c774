"""One file whose modification time changes whenever access is taken away: a key revoked, a
checkpoint permission deleted, a project archived.

The chat route remembers each yes for a moment (`service.models.access.ChatAccess`); it looks
at this file's time (one `stat`, no database) before trusting a remembered answer, so a
revocation by any process sharing the data folder (the API itself, `whetstone keys revoke`)
holds from the very next request. API replicas with data folders of their own see it only
when their remembered answers expire (`WHETSTONE_CHAT_ACCESS_CACHE_SECONDS`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FILENAME = "access-revoked"


class Revocations:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILENAME

    def stamp(self) -> int:
        """The time of the latest revocation (nanoseconds; 0: none yet)."""
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0

    def record(self) -> None:
        """Say that access was taken away; call it after the change is committed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        stamp = time.time_ns()
        os.utime(self.path, ns=(stamp, stamp))
