"""The pages in a real browser against a real daemon seeded with known traces."""

from __future__ import annotations

import html
from typing import Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.browser.seed import XSS
from tests.integration.daemon import Daemon
from tests.waiting import wait_until

TIMEOUT_MS = 20_000


def wait_for_plot(page: Any, element_id: str) -> None:
    page.wait_for_function(
        f"() => {{ const g = document.getElementById('{element_id}'); return g && g.data && g.data.length > 0; }}",
        timeout=TIMEOUT_MS,
    )


def open_map(page: Any, daemon: Daemon) -> None:
    page.goto(f"{daemon.api_url}/?range=3600")
    wait_for_plot(page, "map")


def node_names(page: Any) -> list[str]:
    names: list[str] = page.evaluate("() => document.getElementById('map').data.find(t => t.name === 'nodes').text")
    return names


def test_the_map_shows_the_architecture_with_its_health(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    open_map(page, daemon)
    labels = node_names(page)
    for name in ("bank-api", "withdraw", "accounts", "alerts", "notify", "client"):
        assert any(label.startswith(name) for label in labels), labels
    fills = page.evaluate(
        "() => document.getElementById('map').data.filter(t => t.fill === 'toself').map(t => t.fillcolor)"
    )
    assert "#d62728" in fills and "#8e44ad" in fills and "#2ca02c" in fills  # fault, throttle, ok arcs
    dashed = page.evaluate(
        "() => document.getElementById('map').data.filter(t => t.line && t.line.dash === '6px,5px')[0].x.length"
    )
    assert dashed >= 3  # the queue hops are drawn dashed
    svg_text = page.locator("#map").inner_text()
    assert XSS in svg_text  # the hostile service name is shown as characters
    assert page.locator("img[src=x]").count() == 0 and page.dialogs == []
    screenshot(page, "map")  # docs/screenshot-map.png is one of these, copied by hand


def test_the_first_paint_draws_the_map_before_plotly_and_gives_way_to_it(
    page: Any, daemon: Daemon, seeded: dict[str, str]
) -> None:
    held: list[Any] = []
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.route("**/static/plotly.min.js", lambda route: held.append(route))  # plotly.js not there yet
    response = page.goto(f"{daemon.api_url}/?range=3600", wait_until="commit")
    assert "'sha256-" in response.headers["content-security-policy"]  # the inline first paint, by hash only
    preview = page.locator("#map svg.map-preview")
    preview.wait_for(timeout=TIMEOUT_MS)
    assert preview.locator("polygon").count() > 0 and preview.locator("polyline").count() > 0  # rings, edges
    text = preview.text_content()
    assert "withdraw" in text and XSS in text  # labels, the hostile one as characters
    assert page.locator("img[src=x]").count() == 0 and page.dialogs == []
    assert not [url for url in requested if "boot.js" in url]  # drawn by the page's own inline script
    screenshot(page, "map-first-paint")
    held[0].continue_()
    wait_for_plot(page, "map")
    assert page.locator("#map svg.map-preview").count() == 0  # plotly's map replaced the preview
    assert page.errors == []


def click_node(page: Any, name: str) -> None:
    """A real mouse click on a node, at the pixel plotly drew it."""
    point = page.evaluate(
        """(name) => {
            const g = document.getElementById('map');
            const nodes = g.data.find(t => t.name === 'nodes');
            const i = nodes.text.findIndex(t => t.startsWith(name));
            const L = g._fullLayout;
            return {x: L.xaxis.l2p(nodes.x[i]) + L._size.l, y: L.yaxis.l2p(nodes.y[i]) + L._size.t};
        }""",
        name,
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])


def test_clicking_a_node_shows_its_figures(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    open_map(page, daemon)
    click_node(page, "withdraw")
    panel = page.locator("#panel")
    panel.locator("h2").wait_for(timeout=TIMEOUT_MS)
    assert panel.locator("h2").inner_text() == "withdraw"
    text = panel.inner_text()
    assert "requests" in text and "6" in text and "fault 5xx" in text and "p50 / p90 / p99" in text
    assert "init p50 / p99" in text  # the cold start
    assert panel.locator("#node-traces").get_attribute("href").startswith("/traces?filter=service")
    # Six invocations of 128 MB, priced. Read until a read holds the figures: the panel is drawn
    # anew (its cost section empty until the cost arrives) when the map refreshes, and on a busy
    # machine a refresh fell between seeing the heading and reading the text.
    cost = wait_until(
        lambda: text if "per hour at this rate" in (text := panel.locator("#node-cost").inner_text()) else "",
        timeout_s=TIMEOUT_MS / 1000,
        poll_s=0.1,
    )
    assert "per million requests\t$" in cost and "per hour at this rate" in cost and "lambda.request" in cost
    screenshot(page, "map-panel")


def test_a_filter_with_a_syntax_error_says_where(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/traces?range=3600")
    wait_for_plot(page, "traces-histogram")
    page.fill("#filter", 'service("withdraw") { fault')
    page.click("#filter-form button")
    error = page.locator("#filter-error")
    error.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert "column 28" in error.inner_text() and "^" in error.inner_text()
    screenshot(page, "traces-error")


def test_a_valid_filter_lists_the_expected_traces(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/traces?range=3600")
    page.fill("#filter", 'service("withdraw") { fault }')
    page.click("#filter-form button")
    page.wait_for_function("() => document.querySelectorAll('#traces-table tbody tr').length === 1", timeout=TIMEOUT_MS)
    assert page.locator("#traces-table tbody tr").get_attribute("data-trace-id") == seeded["fault"]
    assert "filter=service" in page.url  # the filter lives in the URL
    page.fill("#filter", "")
    page.click("#filter-form button")
    page.wait_for_function("() => document.querySelectorAll('#traces-table tbody tr').length >= 8", timeout=TIMEOUT_MS)
    assert XSS in page.locator("#traces-table").inner_text() and page.dialogs == []
    screenshot(page, "traces")


def test_a_trace_opens_its_waterfall(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/traces/{seeded['cold']}")
    wait_for_plot(page, "waterfall")
    rows = page.evaluate("() => document.getElementById('waterfall').layout.yaxis.ticktext.length")
    assert rows == 6  # 5 spans of the trace and the consumer of its message
    assert "5 spans in this trace, 1 in linked traces" in page.locator("#trace-summary").inner_text()
    assert page.locator("#trace-cost").inner_text().startswith("Cost of this trace: $")
    assert page.locator("#critical-path li").count() >= 3
    screenshot(page, "trace")  # docs/screenshot-trace.png is one of these, copied by hand


def test_the_span_panel_shows_exceptions(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/traces/{seeded['fault']}")
    wait_for_plot(page, "waterfall")
    page.evaluate(
        """() => {
            const g = document.getElementById('waterfall');
            const bar = g.data.find(t => t.type === 'bar' && t.customdata.length && t.name === 'withdraw');
            g.emit('plotly_click', {points: [{customdata: bar.customdata[bar.y.indexOf(Math.min(...bar.y))]}]});
        }"""
    )
    panel = page.locator("#span-panel")
    panel.locator("h2").wait_for(timeout=TIMEOUT_MS)
    text = panel.inner_text()
    assert "Exception: LedgerError" in text and "ledger unavailable" in text
    # The span's log records, in it, in time order; the hostile one as plain characters.
    assert "Logs (2)" in text and "debiting account c1" in text and f"ledger unavailable: {XSS}" in text
    trace_logs = page.locator("#trace-logs").inner_text()
    assert "Logs (2)" in trace_logs and "withdraw · withdraw" in trace_logs and "ERROR" in trace_logs
    assert page.locator("img[src=x]").count() == 0 and page.dialogs == [] and page.errors == []


def test_hostile_strings_stay_inert_in_the_trace_view(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/traces/{seeded['xss']}")
    wait_for_plot(page, "waterfall")
    page.evaluate(
        """() => {
            const g = document.getElementById('waterfall');
            g.emit('plotly_click', {points: [{customdata: g.data[0].customdata[0]}]});
        }"""
    )
    page.locator("#span-panel h2").wait_for(timeout=TIMEOUT_MS)
    assert XSS in page.locator("#span-panel").inner_text()
    assert XSS in page.locator("#waterfall").inner_text()
    kept = page.locator("#trace-kept").inner_text()  # the hostile "reason" tail-keep was given, as text
    assert kept.startswith(f"Kept: {XSS} by tail-keep (") and "<img" in kept
    assert page.locator("img[src=x]").count() == 0 and page.dialogs == [] and page.errors == []


def test_analytics_shows_series_cold_starts_and_throttles(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/analytics?range=3600")
    for chart in ("chart-requests", "chart-rates", "chart-latency", "chart-cold"):
        wait_for_plot(page, chart)
    page.wait_for_function("() => document.querySelectorAll('#cold-starts tr').length >= 2", timeout=TIMEOUT_MS)
    assert "withdraw" in page.locator("#cold-starts").inner_text()
    # for all incoming requests, the chart shows the functions' cold starts, as the table does
    cold = page.evaluate(
        "() => document.getElementById('chart-cold').data.map(t => [t.name, t.y.reduce((a, b) => a + b, 0)])"
    )
    assert cold and all(total > 0 for _, total in cold) and "withdraw" in {name for name, _ in cold}
    assert "accounts" in page.locator("#throttles").inner_text()
    screenshot(page, "analytics")


@pytest.fixture(scope="module")
def guarded_daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    running = Daemon(tmp_path_factory.mktemp("guarded") / "spans.duckdb", token="s3cret-token").start()
    yield running
    running.stop()


def test_with_a_token_the_ui_asks_once_and_keeps_a_cookie(page: Any, guarded_daemon: Daemon) -> None:
    page.goto(f"{guarded_daemon.api_url}/traces")
    assert "/login" in page.url
    page.fill("input[name=token]", "wrong")
    page.click("form.login button")
    assert "not the daemon's token" in page.locator("form.login").inner_text()
    page.fill("input[name=token]", "s3cret-token")
    page.click("form.login button")
    page.wait_for_url("**/traces", timeout=TIMEOUT_MS)
    cookie = next(c for c in page.context.cookies() if c["name"] == "fluoro_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "s3cret" not in cookie["value"]
    page.goto(f"{guarded_daemon.api_url}/")  # no second prompt
    assert "/login" not in page.url
    assert httpx.get(f"{guarded_daemon.api_url}/ui/data/map", timeout=10).status_code == 401


def test_a_hostile_node_name_is_inert_in_its_panel(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    open_map(page, daemon)
    click_node(page, html.escape(XSS))  # the figure holds it escaped; plotly shows the characters
    panel = page.locator("#panel")
    panel.locator("h2").wait_for(timeout=TIMEOUT_MS)
    assert panel.locator("h2").inner_text() == XSS
    assert page.locator("img[src=x]").count() == 0 and page.dialogs == [] and page.errors == []


def test_selecting_a_histogram_range_opens_those_traces(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    open_map(page, daemon)
    click_node(page, "withdraw")
    page.locator("#node-histogram").wait_for(timeout=TIMEOUT_MS)
    wait_for_plot(page, "node-histogram")
    page.evaluate("() => document.getElementById('node-histogram').emit('plotly_selected', {range: {x: [1, 100000]}})")
    page.wait_for_url("**/traces?filter=*", timeout=TIMEOUT_MS)
    assert "responsetime" in page.input_value("#filter") and "withdraw" in page.input_value("#filter")
    page.wait_for_function("() => document.querySelectorAll('#traces-table tbody tr').length === 6", timeout=TIMEOUT_MS)


def test_the_group_selector_narrows_every_page(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    saved = httpx.post(
        f"{daemon.api_url}/api/groups", json={"name": "withdrawals", "filter": 'service("withdraw")'}, timeout=10
    )
    assert saved.status_code == 201
    try:
        open_map(page, daemon)
        hostile = html.escape(XSS, quote=True)  # as the figure carries it
        assert hostile in node_names(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#group option')].some(o => o.value === 'withdrawals')"
        )
        page.select_option("#group", "withdrawals")
        page.wait_for_function(
            f"() => !document.getElementById('map').data.find(t => t.name === 'nodes').text.includes({hostile!r})",
            timeout=TIMEOUT_MS,
        )
        assert "withdraw" in node_names(page) and "group=withdrawals" in page.url
        page.goto(f"{daemon.api_url}/traces?range=3600&group=withdrawals")
        page.wait_for_function(
            "() => document.querySelectorAll('#traces-table tbody tr').length > 0", timeout=TIMEOUT_MS
        )
        assert page.locator("#group").input_value() == "withdrawals"
        assert XSS not in page.locator("#traces-table").inner_text()
        screenshot(page, "traces-group")
    finally:
        httpx.delete(f"{daemon.api_url}/api/groups/withdrawals", timeout=10)


def test_two_ticked_traces_compare_span_by_span(page: Any, daemon: Daemon, seeded: dict[str, str]) -> None:
    page.goto(f"{daemon.api_url}/traces?range=3600")
    page.wait_for_function("() => document.querySelectorAll('#traces-table tbody tr').length >= 8", timeout=TIMEOUT_MS)
    assert page.locator("#compare-traces").is_disabled()
    for role in ("cold", "ok"):
        page.locator(f"#traces-table tr[data-trace-id='{seeded[role]}'] input.pick").check()
    page.click("#compare-traces")
    page.wait_for_function("() => document.querySelectorAll('#compare-table tbody tr').length >= 4", timeout=TIMEOUT_MS)
    assert f"a={seeded['cold']}" in page.url and f"b={seeded['ok']}" in page.url
    only_a = page.locator("#compare-table tr.only-a")
    assert only_a.count() == 1 and "Initialization" in only_a.inner_text()  # the cold start
    assert page.locator("#compare-table tr.both").count() >= 3
    assert "1 spans only in A, 0 only in B" in page.locator("#compare-summary").inner_text()
    screenshot(page, "compare")
    assert page.errors == []
    bad = httpx.get(f"{daemon.api_url}/ui/data/compare", params={"a": "nope", "b": seeded["ok"]}, timeout=10)
    assert bad.status_code == 400
    unknown = httpx.get(f"{daemon.api_url}/ui/data/compare", params={"a": "ab" * 16, "b": seeded["ok"]}, timeout=10)
    assert unknown.status_code == 404
