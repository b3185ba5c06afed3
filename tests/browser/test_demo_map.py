"""The demo's own map in a real browser at 1600x1000, measured as a reader would see it: no label
over another or over a ring, at most five crossings, nodes that stay put when traffic comes."""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pyarrow.compute as pc
import pytest

from tests.browser.conftest import screenshot
from tests.browser.map_geometry import MEASURE_NODES, crossings, overlap, polylines
from tests.demo_run import write_recorded_run
from tests.integration.daemon import Daemon

TIMEOUT_MS = 20_000
VIEWPORT = {"width": 1600, "height": 1000}
MAX_CROSSINGS = 5
MAX_MOVE_PX = 3.0


@pytest.fixture(scope="module")
def demo_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, int, int]]:
    """A daemon over the recorded demo run, its last span a minute ago; with the run's first and last start, ns."""
    path = tmp_path_factory.mktemp("demo-map") / "demo.duckdb"
    spans = write_recorded_run(path, time.time_ns() - 60 * 10**9)
    running = Daemon(path).start()
    yield running, int(pc.min(spans.column("start_ns")).as_py()), int(pc.max(spans.column("start_ns")).as_py())
    running.stop()


@pytest.fixture
def wide_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.errors = errors
    yield opened
    context.close()


def drawn(page: Any) -> None:
    page.wait_for_function(
        "() => { const g = document.getElementById('map'); return g && g.data && g.data.length > 0; }",
        timeout=TIMEOUT_MS,
    )


def measure(page: Any) -> dict[str, Any]:
    measured: dict[str, Any] = page.evaluate(MEASURE_NODES)
    measured["data"] = page.evaluate("() => document.getElementById('map').data")
    return measured


def assert_readable(measured: dict[str, Any]) -> None:
    labels, rings = measured["labels"], measured["rings"]
    assert len(labels) == len(rings) >= 30
    for one, other in itertools.combinations(labels, 2):
        assert not overlap(one["box"], other["box"]), f"{one['text']!r} over {other['text']!r}"
    for text, ring in itertools.product(labels, rings):
        assert not overlap(text["box"], ring["box"]), f"{text['text']!r} over the ring of {ring['name']!r}"
    assert crossings(polylines(measured["data"])) <= MAX_CROSSINGS
    assert measured["scale"] == pytest.approx(1.0, abs=0.01)  # drawn one unit a pixel


@pytest.mark.parametrize("view", ["compact", "xray"])
def test_the_demo_map_reads_at_a_glance(wide_page: Any, demo_daemon: tuple[Daemon, int, int], view: str) -> None:
    daemon, _, _ = demo_daemon
    wide_page.goto(f"{daemon.api_url}/?range=900&view={view}")
    drawn(wide_page)
    measured = measure(wide_page)
    assert_readable(measured)
    names = {ring["name"] for ring in measured["rings"]}
    assert {"bank-api/prod", "withdraw", "resize-image", "analyze-posts", "client"} <= names
    screenshot(wide_page, f"demo-map-{view}")
    assert wide_page.errors == []


def local_time(ns: int) -> str:
    """A datetime-local input's value for `ns` (the page reads it as UTC)."""
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def show_window(page: Any, start_ns: int, end_ns: int) -> None:
    """Both ends of a custom window set at once, then one refresh, drawn before this returns."""
    page.evaluate(
        """([start, end]) => {
            document.getElementById('range').value = 'custom';
            document.getElementById('custom-start').value = start;
            document.getElementById('custom-end').value = end;
            window.drawnBefore = document.getElementById('map').data;
        }""",
        [local_time(start_ns), local_time(end_ns)],
    )
    page.dispatch_event("#custom-end", "change")
    page.wait_for_function("() => document.getElementById('map').data !== window.drawnBefore", timeout=TIMEOUT_MS)


def places(measured: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {ring["id"]: tuple(ring["centre"]) for ring in measured["rings"]}


def test_traffic_and_new_nodes_move_no_node(wide_page: Any, demo_daemon: tuple[Daemon, int, int]) -> None:
    daemon, first_ns, last_ns = demo_daemon
    # A view of its own (a filter every trace passes), so its layout starts from this test's first window.
    wide_page.goto(f"{daemon.api_url}/?live=0&filter={'responsetime >= 0'}")
    drawn(wide_page)
    start_ns = first_ns - 10**9
    show_window(wide_page, start_ns, first_ns + 12 * 10**9)
    early = measure(wide_page)
    show_window(wide_page, start_ns, last_ns + 10**9)
    later = measure(wide_page)
    assert len(later["rings"]) > len(early["rings"])  # traffic brought new nodes
    hover = {h for t in later["data"] if t.get("name") == "nodes" for h in t["hovertext"]}
    assert hover - {h for t in early["data"] if t.get("name") == "nodes" for h in t["hovertext"]}  # and new figures
    before, after = places(early), places(later)
    for key, (x, y) in before.items():
        assert abs(after[key][0] - x) <= MAX_MOVE_PX and abs(after[key][1] - y) <= MAX_MOVE_PX, key
    for one, other in itertools.combinations(later["labels"], 2):
        assert not overlap(one["box"], other["box"]), f"{one['text']!r} over {other['text']!r}"
    for text, ring in itertools.product(later["labels"], later["rings"]):
        assert not overlap(text["box"], ring["box"]), f"{text['text']!r} over the ring of {ring['name']!r}"
    assert wide_page.errors == []
