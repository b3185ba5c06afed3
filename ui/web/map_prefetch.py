"""The map page's data, started on the server as the page itself is served.

The first paint waits for the map's data, and the data (~250 ms of service map on 1M spans,
bench/ui.py) used to start only once the browser had parsed the page and run boot.js. Serving
``/`` now starts the same map in the background, for the window boot.js is about to ask for;
when that request comes (same range, no filter, an end within a few seconds), it takes the
result in flight instead of building the map again. One at a time and one kept: a burst of
page loads cannot queue up map builds, and a prefetch nobody takes is simply replaced.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

DEFAULT_RANGE_S: Final = 900.0
# How far the browser's `now` may be from the server's when the page was served.
MAX_END_SKEW_S: Final = 5.0
MAX_WAIT_S: Final = 30.0
Page = TypeVar("Page")


@dataclass(frozen=True)
class _Prefetched(Generic[Page]):
    range_s: float
    end_s: float
    result: concurrent.futures.Future[Page]


class MapPrefetch(Generic[Page]):
    """Builds the map for a page being served; hands it to the page's own request for it."""

    def __init__(self, build: Callable[[float, float], Page]) -> None:
        """`build(start_s, end_s)`: the map data endpoint's body for that window, no filter."""
        self._build = build
        self._lock = threading.Lock()
        self._slot: _Prefetched[Page] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fluoro-map-prefetch")

    def start(self, range_param: str | None, filter_param: str | None) -> None:
        """For `/?range=&filter=`: start the map boot.js will ask for (not for a filter or a custom range)."""
        if filter_param:
            return
        try:
            range_s = float(range_param) if range_param else DEFAULT_RANGE_S
        except ValueError:
            return
        if not 0 < range_s <= 7 * 86400:
            return
        with self._lock:
            if self._slot is not None and not self._slot.result.done():
                return
            end_s = time.time()
            self._slot = _Prefetched(range_s, end_s, self._pool.submit(self._build, end_s - range_s, end_s))

    def take(self, start: str | None, end: str | None) -> Page | None:
        """The prefetched body when it answers this request's window; None: build it as usual."""
        try:
            start_s, end_s = float(start or ""), float(end or "")
        except ValueError:
            return None
        with self._lock:
            slot = self._slot
            if slot is None or abs(end_s - slot.end_s) > MAX_END_SKEW_S or abs(end_s - start_s - slot.range_s) > 0.01:
                return None
            self._slot = None
        try:
            return slot.result.result(timeout=MAX_WAIT_S)
        except Exception:  # noqa: BLE001 - the request builds it again and reports what goes wrong itself
            return None
