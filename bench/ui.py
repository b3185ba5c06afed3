"""First render of the map page: 1M spans stored, 50 services, ~10,000 traces in the window.

Writes 1M spans (100k traces of 10 spans across 50 services, spread over the last 2.5 hours,
so the default 15-minute window holds ~10,000 traces) through the store, linked and rolled up
as the daemon does, then starts the real ``fluoro serve`` on that file and measures, median
of --runs runs each:

- server: GET / (the page) and GET /ui/data/map (the figure and the map, built in Python);
- browser: Debian's Chromium (Playwright), from navigation to the map painted (boot.js's SVG
  of the figure, or plotly's plot if that came first) and to the map interactive (plotly's plot
  has its data), in a fresh context each run (plotly.js not cached: a first visit), and on a
  reload (cached, as a page left open or revisited).

Bounded: fixed counts, a temporary directory removed at the end, the daemon stopped.

Usage: python bench/ui.py [--spans 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from query import SPANS_PER_TRACE, batch_of  # noqa: E402

from collector.storage import rollup_sql  # noqa: E402
from collector.storage.duckdb_store import DuckDBStore  # noqa: E402
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.integration.daemon import Daemon  # noqa: E402

SERVICES = 50
SPREAD_NS = 9000 * 10**9  # 2.5 hours: the last 15 minutes hold a tenth of the traces
# Milestones the page records (performance.mark in app.js), ms since navigation started.
PHASES = """() => Object.fromEntries(['map previewed', 'scripts ready', 'map data received', 'map drawn'].map(
    name => [name, (performance.getEntriesByName(name)[0] || {startTime: NaN}).startTime]))"""
DRAWN = "() => { const g = document.getElementById('map'); return g && g.data && g.data.length > 0; }"
# The first paint: boot.js's SVG of the map, drawn from the figure before plotly.js is ready.
PREVIEWED = (
    "() => document.querySelector('#map .map-preview') !== null"
    " || ((document.getElementById('map') || {}).data || []).length > 0"
)


def load(path: Path, spans: int) -> None:
    store = DuckDBStore(str(path))
    rng = np.random.default_rng(11)
    t0_ns = time.time_ns() - SPREAD_NS
    traces_per_batch = 10_000
    for _ in range(spans // (traces_per_batch * SPANS_PER_TRACE)):
        store.write([batch_of(rng, traces_per_batch, t0_ns, SPREAD_NS, SERVICES)])
        store.link_new_spans()
    store.roll_up_calls(time.time_ns() - rollup_sql.SETTLE_NS)
    store.close()


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.1f} ms (min {min(samples):.1f}, max {max(samples):.1f})"


def server_times(api_url: str, runs: int) -> None:
    for path in ("/", "/ui/data/map"):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            response = httpx.get(f"{api_url}{path}", timeout=60, headers={"Accept-Encoding": "gzip"})
            response.raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
        print(f"  server GET {path:<14} {median_ms(samples)}  {len(response.content):,} bytes")
    body = httpx.get(f"{api_url}/ui/data/map", timeout=60).json()["map"]
    traces = httpx.get(f"{api_url}/api/traces", params={"limit": 1000}, timeout=60).json()["traces"]
    gateways = [n for n in body["nodes"] if n["type"] == "AWS::ApiGateway::Stage" and n["figures"]]
    requests = sum(n["figures"]["requests"] for n in gateways)
    print(f"  map: {len(body['nodes'])} nodes, {len(body['edges'])} edges; {requests:,} traces in the window")
    print(f"  (the traces page lists the newest {len(traces)})")


def browser_times(api_url: str, runs: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        first, painted, again, phases = [], [], [], []
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            started = time.perf_counter()
            page.goto(f"{api_url}/", wait_until="commit")
            page.wait_for_function(PREVIEWED, timeout=60_000, polling="raf")
            painted.append((time.perf_counter() - started) * 1000)
            page.wait_for_function(DRAWN, timeout=60_000)
            first.append((time.perf_counter() - started) * 1000)
            phases.append(page.evaluate(PHASES))
            started = time.perf_counter()
            page.reload()
            page.wait_for_function(DRAWN, timeout=60_000)
            again.append((time.perf_counter() - started) * 1000)
            context.close()
        browser.close()
    print(f"  browser first visit, map painted      {median_ms(painted)}  (target <= 1000 ms)")
    print(f"  browser first visit, map interactive  {median_ms(first)}")
    print(f"  browser reload       {median_ms(again)}")
    for name in phases[0]:
        print(f"    first visit, {name:<22} {median_ms([p[name] for p in phases])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluoro-ui-bench-"))
    try:
        started = time.perf_counter()
        load(workdir / "ui.duckdb", args.spans)
        print(f"{args.spans:,} spans across {SERVICES} services loaded in {time.perf_counter() - started:.0f} s")
        daemon = Daemon(workdir / "ui.duckdb").start(timeout_s=60)
        try:
            server_times(daemon.api_url, args.runs)
            if os.path.exists(CHROMIUM):
                browser_times(daemon.api_url, args.runs)
            else:
                print(f"  browser: skipped, no Chromium at {CHROMIUM} (apt-get install chromium)")
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
