"""One log line now and then for what clients send wrong, never a traceback.

A hostile or broken client can send a bad request every millisecond; logging each (let alone
with a stack) would fill the disk and drown the operator's other lines. A bad request is the
client's error: it is answered 4xx with the reason and counted in /metrics; the log says it
happened, at most once per interval per kind, with how many were left out since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs a warning per `kind` at most once every `interval_s`, counting what it leaves out."""

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_s: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> bool:
        """Log `message` unless `kind` was logged within the interval; True when it was logged."""
        now = self._clock()
        with self._lock:
            last = self._last_s.get(kind)
            if last is not None and now - last < self._interval_s:
                self._left_out[kind] = self._left_out.get(kind, 0) + 1
                return False
            self._last_s[kind] = now
            left_out = self._left_out.pop(kind, 0)
        suffix = f" ({left_out} more like it since the last line)" if left_out else ""
        self._logger.warning("%s: %s%s", kind, message[:300], suffix)
        return True
