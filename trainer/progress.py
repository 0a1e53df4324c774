"""The progress channel: messages (`contracts.messages`) to the service (HTTP) or to stdout,
and the replies.

Every message gets an action back: `continue`, `cancel` or `pause`. A stop request sticks
(a later `cancel` overrides a `pause`); the training loop reads `Progress.action` between
steps. A heartbeat thread keeps the channel alive (and hears a cancel) while a long step
runs. SIGTERM counts as a `pause` request: checkpoint, then exit 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import Any, Protocol

from contracts.messages import ACTIONS, Action, Heartbeat, Log, Message

HEARTBEAT_SECONDS = 30.0

log = logging.getLogger(__name__)


class Channel(Protocol):
    def send(self, message: Message) -> Action: ...


class StdoutChannel:
    """One JSON line per message on stdout; the answer is always `continue`."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def send(self, message: Message) -> Action:
        stream = self.stream or sys.stdout
        stream.write(json.dumps(message.model_dump(mode="json")) + "\n")
        stream.flush()
        return "continue"


class HttpChannel:
    """POST each message as JSON with the attempt's bearer token; retried a few times."""

    def __init__(self, url: str, token: str, attempts: int = 4, timeout: float = 10.0) -> None:
        import httpx

        self.url = url
        self.attempts = attempts
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def send(self, message: Message) -> Action:
        import httpx

        body = message.model_dump(mode="json")
        delay = 0.5
        for attempt in range(self.attempts):
            try:
                response = self.client.post(self.url, json=body)
                if response.status_code < 500:
                    response.raise_for_status()
                    action = response.json().get("action", "continue")
                    return action if action in ACTIONS else "continue"
            except (httpx.TransportError, ValueError) as e:
                log.warning("progress report failed (%s), attempt %d", e, attempt + 1)
            time.sleep(delay)
            delay *= 2
        log.warning("progress report dropped after %d attempts: %s", self.attempts, message.type)
        return "continue"


class Progress:
    """Sends messages, remembers the first stop request, and heartbeats in the background."""

    def __init__(self, channel: Channel, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.channel = channel
        self.action: Action = "continue"
        self.step = 0
        self.heartbeat_seconds = heartbeat_seconds
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, message: Message) -> Action:
        with self._lock:
            action = self.channel.send(message)
        self.request(action)
        return self.action

    def request(self, action: Action) -> None:
        if action == "cancel" or (action == "pause" and self.action == "continue"):
            self.action = action

    def log(self, message: str, level: str = "info") -> None:
        self.send(Log(level=level, message=message))

    def start_heartbeat(self) -> None:
        if self._thread is None and self.heartbeat_seconds > 0:
            self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
            self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stopped.wait(self.heartbeat_seconds):
            self.send(Heartbeat(step=self.step))

    def pause_on_sigterm(self) -> None:
        """SIGTERM asks for a checkpoint and a clean exit (main thread only)."""
        signal.signal(signal.SIGTERM, lambda _signum, _frame: self.request("pause"))
