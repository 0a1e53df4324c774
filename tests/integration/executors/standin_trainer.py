"""Stands in for `python -m trainer` where the trainer is not the subject of a test.

Prints its arguments and the token from `WHETSTONE_ATTEMPT_TOKEN`, then behaves as the
environment says: `STANDIN_SLEEP` seconds of work, `STANDIN_UNTIL` a file whose creation
ends the work (the test's release; 60 s at most), `STANDIN_EXIT` as exit code,
`STANDIN_IGNORE_TERM=1` to ignore SIGTERM, `STANDIN_CHILD=1` to start a child process (which
shares the process group) and print its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main() -> None:
    print("args:", " ".join(sys.argv[1:]), flush=True)
    print("token-from-env:", os.environ.get("WHETSTONE_ATTEMPT_TOKEN", ""), flush=True)
    if os.environ.get("STANDIN_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("STANDIN_CHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(f"child: {child.pid}", flush=True)
    print("ready", flush=True)
    release = os.environ.get("STANDIN_UNTIL")
    deadline = time.monotonic() + 60
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    # The work itself (how long a stand-in trainer runs), not a wait for anything.
    time.sleep(float(os.environ.get("STANDIN_SLEEP") or 0))
    sys.exit(int(os.environ.get("STANDIN_EXIT") or 0))


if __name__ == "__main__":
    main()
