"""MapPrefetch: the map page's data starts with the page and goes to the page's own request."""

from __future__ import annotations

import threading
import time
from typing import Any

from ui.web.map_prefetch import MapPrefetch


class Builds:
    """A map build that records its windows and can be held back."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, start_s: float, end_s: float) -> dict[str, Any]:
        self.release.wait(5)
        self.windows.append((start_s, end_s))
        return {"window": [start_s, end_s]}


def test_the_page_request_takes_the_map_started_with_the_page() -> None:
    builds = Builds()
    prefetch = MapPrefetch(builds)
    prefetch.start("300", None)
    now = time.time()
    body = prefetch.take(str(now - 300), str(now))
    assert body is not None and body["window"][1] - body["window"][0] == 300
    assert len(builds.windows) == 1
    assert prefetch.take(str(now - 300), str(now)) is None  # taken once: a refresh builds its own


def test_another_window_a_filter_or_a_custom_range_builds_as_usual() -> None:
    builds = Builds()
    prefetch = MapPrefetch(builds)
    prefetch.start(None, None)  # the default 15 minutes
    now = time.time()
    assert prefetch.take(str(now - 3600), str(now)) is None
    assert prefetch.take(str(now - 1000 - 900), str(now - 1000)) is None  # ends long before
    assert prefetch.take("not a number", str(now)) is None
    prefetch.start("300", 'service("a")')
    prefetch.start("custom", None)
    time.sleep(0.1)
    assert len(builds.windows) == 1


def test_page_loads_in_a_burst_start_one_build_at_a_time() -> None:
    builds = Builds()
    builds.release.clear()
    prefetch = MapPrefetch(builds)
    for _ in range(20):
        prefetch.start(None, None)
    builds.release.set()
    now = time.time()
    assert prefetch.take(str(now - 900), str(now)) is not None
    assert len(builds.windows) == 1
