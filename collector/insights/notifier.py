"""POSTing each opened and closed insight to a URL (`fluoro serve --notify-url`), off every hot path.

The detector hands an insight over and goes on: a thread of its own posts it, retrying with
exponential backoff (tenacity) while the receiver is down or answers 5xx or 429. Bounded: at most
MAX_QUEUED insights wait (older ones give way, counted in `dropped`), each tried for at most
MAX_ATTEMPTS, and stopping interrupts a wait at once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any, Final

import orjson
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from collector.insights.insight import Insight

_logger = logging.getLogger(__name__)
MAX_QUEUED: Final = 1000
MAX_ATTEMPTS: Final = 6
TIMEOUT_S: Final = 5.0


class Retryable(RuntimeError):
    """The receiver could not take it now (unreachable, 5xx, 429)."""


class Stopping(RuntimeError):
    """The collector is stopping: no more attempts."""


def event_of(insight: Insight) -> dict[str, Any]:
    """The JSON body: what happened (opened or closed) and the insight."""
    return {"event": "closed" if insight.state == "closed" else "opened", "insight": insight.to_json()}


class Notifier:
    """Posts insights to `url` from a thread of its own."""

    def __init__(self, url: str, *, backoff_s: tuple[float, float] = (0.5, 30.0)) -> None:
        self.url = url
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._backoff_s = backoff_s
        self._queue: queue.Queue[Insight | None] = queue.Queue(MAX_QUEUED)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fluoro-insight-notifier", daemon=True)
        self._thread.start()

    def notify(self, insight: Insight) -> None:
        """Queue one insight; never blocks (the oldest waiting one gives way when full)."""
        while True:
            try:
                self._queue.put_nowait(insight)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        import httpx  # here, as below: a daemon without a webhook does not carry httpx (~5 MiB)

        while not self._stopping.is_set():
            insight = self._queue.get()
            if insight is None:
                return
            try:
                self._deliver(insight)
                self.sent += 1
            except (Stopping, Retryable, httpx.HTTPError) as exc:
                self.failed += 1
                _logger.warning("insight %s not delivered to %s: %s", insight.id, self.url, exc)

    def _deliver(self, insight: Insight) -> None:
        import httpx

        low_s, high_s = self._backoff_s
        for attempt in Retrying(
            stop=stop_after_attempt(MAX_ATTEMPTS),
            wait=wait_exponential(multiplier=low_s, max=high_s),
            retry=retry_if_exception_type((Retryable, httpx.TransportError)),
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                self._post_once(insight)

    def _post_once(self, insight: Insight) -> None:
        import httpx

        if self._stopping.is_set():
            raise Stopping("stopping")
        answer = httpx.post(
            self.url,
            content=orjson.dumps(event_of(insight)),
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT_S,
        )
        if answer.status_code == 429 or answer.status_code >= 500:
            raise Retryable(f"{self.url} answered {answer.status_code}")
        if answer.status_code >= 400:
            _logger.warning("insight %s refused by %s: %d", insight.id, self.url, answer.status_code)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)
