"""A clock a test moves by hand, for the ingest parts (collector/ingest/clock.py)."""

from __future__ import annotations

import threading
import time

REAL_POLL_S = 0.002  # how often a timed wait looks at the manual time again


class ManualClock:
    """Time that passes only when :meth:`advance` says so.

    A timed wait returns every couple of real milliseconds, so its caller looks at this clock
    again (every caller waits in a loop that re-checks its condition); a wait without a timeout
    (for work to arrive) is the condition's own.
    """

    def __init__(self, start_s: float = 1000.0) -> None:
        self._now_s = start_s
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, duration_s: float) -> None:
        with self._lock:
            self._now_s += duration_s

    def wait(self, condition: threading.Condition, timeout_s: float | None) -> None:
        condition.wait(None if timeout_s is None else REAL_POLL_S)

    def sleep(self, duration_s: float) -> None:
        until_s = self.monotonic() + duration_s
        while self.monotonic() < until_s:
            time.sleep(REAL_POLL_S)
