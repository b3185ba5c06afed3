"""The Insights page in a real browser: the timeline, the table, and the way to the affected traces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow.compute as pc
import pytest

from collector.insights.insight import Insight, InsightNode
from collector.storage.duckdb_store import DuckDBStore
from tests.browser.conftest import screenshot
from tests.browser.seed import XSS
from tests.demo_run import write_recorded_run
from tests.integration.daemon import Daemon

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def insight_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The recorded demo run, a minute old, with two insights saved as the detector saves them."""
    path = tmp_path_factory.mktemp("insights") / "demo.duckdb"
    spans = write_recorded_run(path, time.time_ns() - 60 * 10**9)
    first, last = int(pc.min(spans.column("start_ns")).as_py()), int(pc.max(spans.column("start_ns")).as_py())
    analyzer = InsightNode("w", "analyze-posts", "AWS::Lambda::Function")  # the recorded run's poison records
    stream = InsightNode("a", "posts", "AWS::Kinesis::Stream")
    hostile = InsightNode("x", XSS, "remote")
    store = DuckDBStore(str(path))
    try:
        store.insights.save_insights(
            [
                Insight(
                    "i-fault", None, "fault", "closed", first + 10**9, last, analyzer, (analyzer, stream),
                    120, 30, 0.25, 0.01, 1e-12,
                    'service(id(name: "analyze-posts", type: "AWS::Lambda::Function")) { fault }', last,
                ),
                Insight(
                    "i-xss", None, "latency", "open", last - 5 * 10**9, None, hostile, (hostile,),
                    50, 9, 0.18, 0.01, 1e-8, f"service({XSS!r})", last,
                ),
            ]
        )  # fmt: skip
    finally:
        store.close()
    running = Daemon(path).start()
    yield running
    running.stop()


def test_the_insights_page_lists_them_and_leads_to_their_traces(page: Any, insight_daemon: Daemon) -> None:
    page.goto(f"{insight_daemon.api_url}/insights?range=3600")
    page.wait_for_function(
        "() => document.querySelectorAll('#insights-table tbody tr').length === 2", timeout=TIMEOUT_MS
    )
    rows = page.locator("#insights-table tbody tr")
    text = page.locator("#insights-table").inner_text()
    assert "analyze-posts (AWS::Lambda::Function)" in text and "posts" in text and "30 of 120 (25.0%)" in text
    assert XSS in text and page.locator("img[src=x]").count() == 0 and page.dialogs == []  # inert
    assert page.locator("#insights-count").inner_text() == "2 insights, 1 open"
    bars = page.evaluate("() => document.getElementById('insights-timeline').data.map(t => [t.name, t.y.length])")
    assert sorted(bars) == [["fault", 1], ["latency", 1]]
    screenshot(page, "insights")
    fault_row = rows.filter(has_text="analyze-posts (AWS::Lambda::Function)")
    fault_row.locator("a").click()
    page.wait_for_function("() => document.querySelectorAll('#traces-table tbody tr').length > 0", timeout=TIMEOUT_MS)
    assert page.locator("#filter").input_value().startswith('service(id(name: "analyze-posts"')
    assert page.locator("#range").input_value() == "custom"
    assert page.locator("#traces-table tbody tr").count() == 11  # the run's poisoned batches
    assert "fault" in page.locator("#traces-table").inner_text()
    assert page.errors == []
