"""The time the ingest parts read and wait on, injected so their tests can move it by hand.

Every decision of the pipeline that depends on time (how long a small group lingers, when a
fold is due, when a failed fold is retried, when a periodic task runs) reads ``monotonic()``
from a :class:`Clock`, and every timed wait goes through ``wait``. The system clock waits on the
condition with a timeout; a test's manual clock (tests/clocks.py) waits until someone moves
time or notifies, so a test says "a minute passes" instead of sleeping through it.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def wait(self, condition: threading.Condition, timeout_s: float | None) -> None:
        """With `condition` held: release it until notified or `timeout_s` of this clock pass."""

    def sleep(self, duration_s: float) -> None:
        """Block until `duration_s` of this clock pass."""


class SystemClock:
    """The process's monotonic clock; waits are the condition's own timed waits."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout_s: float | None) -> None:
        condition.wait(timeout_s)

    def sleep(self, duration_s: float) -> None:
        time.sleep(duration_s)
