"""The progress channel: messages (`contracts.messages`) to the service (HTTP) or to stdout,
and the replies.

Every message gets an action back: `continue`, `cancel` or `pause`. A stop request sticks
(a later `cancel` overrides a `pause`); the training loop reads `Progress.action` between
steps. A heartbeat thread keeps the channel alive (and hears a cancel) while a long step
runs. Over HTTP a report is tried until the service takes it (`HttpChannel`).
SIGTERM counts as a `pause` request: checkpoint, then exit 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from contracts.messages import ACTIONS, Action, Heartbeat, Log, Message

HEARTBEAT_SECONDS = 30.0
REPORT_MAX_WAIT_SECONDS = 600.0
"""How long the trainer keeps trying to deliver one report before it stops."""

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


class ReportRefused(Exception):
    """The service refused a report with a 4xx: this attempt is no longer the job's current
    one (401), or the message is not one it reads (400). Never retried; the trainer stops."""

    def __init__(self, status_code: int, text: str) -> None:
        super().__init__(f"the service refused the progress report (HTTP {status_code}): {text}")
        self.status_code = status_code


class ServiceUnreachable(Exception):
    """No report was accepted for `max_wait` seconds: the trainer stops (its lease runs out
    and the service requeues the job from its last registered checkpoint)."""


class _Unsent(Exception):
    """This try did not reach the service, or the service could not take it: try again."""


class HttpChannel:
    """POST each message as JSON with the attempt's bearer token, until the service takes it.

    A try that fails to connect, times out, or gets a 5xx (408, 429 too) is tried again
    after 0.5 s, 1 s, 2 s ... at most `max_delay` apart, for at most `max_wait` seconds
    (`ServiceUnreachable` then). Sends are one at a time and each returns once the service
    has taken the message, so metrics, checkpoints and the final message arrive in order and
    none is dropped; the service ignores a message it already applied (a reply lost on the
    way). A heartbeat gets one try: the next message renews the lease as well. A 4xx raises
    `ReportRefused` at once."""

    def __init__(
        self,
        url: str,
        token: str,
        max_wait: float = REPORT_MAX_WAIT_SECONDS,
        timeout: float = 10.0,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        import httpx

        self.url, self.token = url, token  # the token also reaches the grading route
        self.max_wait, self.first_delay, self.max_delay = max_wait, first_delay, max_delay
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def send(self, message: Message) -> Action:
        body = message.model_dump(mode="json")
        if isinstance(message, Heartbeat):
            try:
                return self._post(body)
            except _Unsent as e:
                log.warning("heartbeat not delivered (%s)", e)
                return "continue"
        deadline = time.monotonic() + self.max_wait
        delay, tries = self.first_delay, 0
        while True:
            tries += 1
            try:
                return self._post(body)
            except _Unsent as e:
                reason = str(e)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceUnreachable(
                    f"the service took no {message.type} report for {self.max_wait:g} s "
                    f"({tries} tries; last: {reason})"
                )
            if tries == 1 or tries % 10 == 0:
                log.warning("%s report not delivered (%s), try %d; retrying", message.type,
                            reason, tries)  # fmt: skip
            time.sleep(min(delay, left))
            delay = min(self.max_delay, delay * 2)

    def _post(self, body: dict[str, Any]) -> Action:
        import httpx

        try:
            response = self.client.post(self.url, json=body)
        except httpx.TransportError as e:
            raise _Unsent(f"{type(e).__name__}: {e}") from e
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise _Unsent(f"HTTP {status}")
        if status >= 400:
            raise ReportRefused(status, response.text[:500])
        try:
            action = response.json().get("action", "continue")
        except (ValueError, AttributeError) as e:  # taken, but the reply is unreadable
            raise _Unsent(f"unreadable reply: {response.text[:100]!r}") from e
        return action if action in ACTIONS else "continue"


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
        self._refused: ReportRefused | None = None
        self._observers: list[Callable[[Message], None]] = []

    def observe(self, observer: Callable[[Message], None]) -> None:
        """Call `observer` with every message sent from now on (W&B logging), before the
        channel gets it; it must not raise."""
        self._observers.append(observer)

    def send(self, message: Message) -> Action:
        if self._refused is not None:
            raise self._refused
        for observer in self._observers:
            observer(message)
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
        """A heartbeat every `heartbeat_seconds`, unless a send is under way (it renews the
        lease itself once it lands: heartbeats never queue up behind a retried report). A
        refused one stops the training at the next step; the next send raises it."""
        while not self._stopped.wait(self.heartbeat_seconds):
            if not self._lock.acquire(blocking=False):
                continue
            try:
                action = self.channel.send(Heartbeat(step=self.step))
            except ReportRefused as e:
                self._refused = e
                self.request("cancel")
                continue
            except Exception:
                log.exception("heartbeat failed")
                continue
            finally:
                self._lock.release()
            self.request(action)

    def pause_on_sigterm(self) -> None:
        """SIGTERM asks for a checkpoint and a clean exit (main thread only)."""
        signal.signal(signal.SIGTERM, lambda _signum, _frame: self.request("pause"))
