"""The demo's own map (the recorded run) as the map page draws it: compact and X-Ray views,
few crossings, one unit a pixel, stable across refreshes, focus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow.compute as pc
import pytest

from collector.query.map_view import MapEdge, MapNode, node_id
from collector.query.service_map import MapQuery
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Subject, TimeWindow
from tests.browser.map_geometry import crossings, polylines
from tests.demo_run import MINUTE_NS, write_recorded_run
from ui.web.compact_map import FUNCTION_TYPE, SERVICE_TYPE, drawn
from ui.web.data import MapDrawing, MapPage, analytics_body, map_body
from ui.web.layout_memory import LayoutMemory

MAX_CROSSINGS = 5


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBStore, TimeWindow]]:
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    spans = write_recorded_run(path, time.time_ns())
    window = TimeWindow(
        int(pc.min(spans.column("start_ns")).as_py()) - MINUTE_NS, int(pc.max(spans.column("start_ns")).as_py()) + 1
    )
    store = DuckDBStore(str(path))
    yield store, window
    store.close()


def trace_named(page: MapPage, name: str) -> dict[str, Any]:
    return next(t for t in page.figure["data"] if t.get("name") == name)


@pytest.mark.parametrize("view", ["compact", "xray"])
def test_the_demo_map_crosses_at_most_five_times(demo: tuple[DuckDBStore, TimeWindow], view: Any) -> None:
    store, window = demo
    page = map_body(store.reader, MapQuery(window, None, 60), MapDrawing(view))
    assert len(page.map.nodes) >= 45 and len(page.map.edges) >= 50
    assert crossings(polylines(page.figure["data"])) <= MAX_CROSSINGS


def test_the_compact_view_draws_a_lambda_once_with_both_figures(demo: tuple[DuckDBStore, TimeWindow]) -> None:
    store, window = demo
    compact = map_body(store.reader, MapQuery(window, None, 60), MapDrawing("compact"))
    xray = map_body(store.reader, MapQuery(window, None, 60), MapDrawing("xray"))
    by_id = {n.id: n for n in compact.map.nodes}
    withdraw = next(n for n in compact.map.nodes if (n.name, n.type) == ("withdraw", SERVICE_TYPE))
    assert by_id[compact.compact[withdraw.id]].type == FUNCTION_TYPE
    assert by_id[compact.compact[withdraw.id]].name == "withdraw"
    drawn = trace_named(compact, "nodes")["customdata"]
    assert len(drawn) == len(xray.map.nodes) - len(compact.compact)
    assert ["node", withdraw.id] in drawn and ["node", compact.compact[withdraw.id]] not in drawn
    hover = trace_named(compact, "nodes")["hovertext"][drawn.index(["node", withdraw.id])]
    assert "function: <b>withdraw</b>" in hover
    assert xray.compact == {} and len(trace_named(xray, "nodes")["customdata"]) == len(xray.map.nodes)


def test_a_refresh_moves_no_node(demo: tuple[DuckDBStore, TimeWindow]) -> None:
    store, window = demo
    memory = LayoutMemory()
    drawing = MapDrawing("compact", None, memory, ("", "60"))
    # the run's first seconds: fewer requests, fewer nodes; then all of it; then its second half
    early = map_body(
        store.reader, MapQuery(TimeWindow(window.start_ns, window.start_ns + 72 * 10**9), None, 60), drawing
    )
    everything = map_body(store.reader, MapQuery(window, None, 60), drawing)
    middle = (window.start_ns + window.end_ns) // 2
    late = map_body(store.reader, MapQuery(TimeWindow(middle, window.end_ns), None, 60), drawing)
    assert len(early.map.nodes) < len(everything.map.nodes)

    def places(page: MapPage) -> dict[str, tuple[float, float]]:
        nodes = trace_named(page, "nodes")
        return {c[1]: (x, y) for c, x, y in zip(nodes["customdata"], nodes["x"], nodes["y"], strict=True)}

    for before, after in ((early, everything), (everything, late)):
        moved = {
            k: (v, places(after)[k]) for k, v in places(before).items() if k in places(after) and places(after)[k] != v
        }
        assert not moved
    assert places(map_body(store.reader, MapQuery(window, None, 60), drawing)) == places(everything)


def test_focus_dims_what_is_off_every_path_through_the_node(demo: tuple[DuckDBStore, TimeWindow]) -> None:
    store, window = demo
    plain = map_body(store.reader, MapQuery(window, None, 60), MapDrawing("compact"))
    key = next(n.id for n in plain.map.nodes if (n.name, n.type) == ("withdraw", SERVICE_TYPE))
    focused = map_body(store.reader, MapQuery(window, None, 60), MapDrawing("compact", key))
    assert focused.focus == key
    bright = set(trace_named(focused, "labels")["text"])
    faint = set(trace_named(focused, "labels faint")["text"])
    assert any(t.startswith("withdraw<br>") for t in bright)
    assert any(t.startswith("bank-api/prod<br>") for t in bright)  # its caller
    assert any(t.startswith("notify-customer<br>") for t in bright)  # downstream, through EventBridge
    assert any(t.startswith("balance<br>") for t in faint)  # a sibling: not on a path through withdraw
    assert any(t.startswith("posts<br>") for t in faint)  # another architecture
    assert any("rgba(" in str(t.get("fillcolor")) for t in focused.figure["data"])
    unknown = map_body(store.reader, MapQuery(window, None, 60), MapDrawing("compact", "00000000000000ff"))
    assert unknown.focus is None and not trace_named(unknown, "labels faint")["text"]


def test_the_figure_is_in_pixels_with_room_for_every_label(demo: tuple[DuckDBStore, TimeWindow]) -> None:
    store, window = demo
    page = map_body(store.reader, MapQuery(window, None, 60), MapDrawing("compact"))
    meta = page.figure["layout"]["meta"]
    assert page.figure["layout"]["yaxis"]["range"] == [meta["height_px"], 0]  # y points down
    nodes = trace_named(page, "nodes")
    assert all(
        0 < x < meta["width_px"] and 0 < y < meta["height_px"] for x, y in zip(nodes["x"], nodes["y"], strict=True)
    )


def test_edges_that_become_one_in_the_compact_view_are_drawn_once() -> None:
    def node(name: str, kind: str) -> MapNode:
        return MapNode(node_id((name, kind)), name, kind, 0, None, None, "ok", False, None)

    def edge(source: MapNode, target: MapNode, is_async: bool = False) -> MapEdge:
        return MapEdge(f"{source.id}-{target.id}", source.id, target.id, is_async, None, None)

    stream, service, function = node("posts", "AWS::Kinesis::Stream"), node("f", SERVICE_TYPE), node("f", FUNCTION_TYPE)
    table, other = node("t", "AWS::DynamoDB::Table"), node("g", FUNCTION_TYPE)
    edges = [edge(stream, function, True), edge(stream, service, True), edge(service, function), edge(function, table)]
    nodes, drawn_edges = drawn([stream, service, function, table, other], [*edges, edge(table, other)], "compact")
    assert [n.id for n in nodes] == [stream.id, service.id, table.id, other.id]  # g has no service node
    assert nodes[1].function == function and nodes[1].member_ids == (service.id, function.id)
    assert [(e.source, e.target, e.edge.id) for e in drawn_edges] == [
        (stream.id, service.id, edges[1].id),  # the caller's view of the invocation
        (service.id, table.id, edges[3].id),
        (table.id, other.id, f"{table.id}-{other.id}"),
    ]


def test_the_cold_start_chart_counts_what_is_downstream_as_the_table_does(
    demo: tuple[DuckDBStore, TimeWindow],
) -> None:
    store, window = demo
    everything = analytics_body(store.reader, window, None, Subject(), 60, "previous")
    functions = {n.name for n in everything.nodes if n.figures is not None and n.figures.cold_starts}
    assert {n.name for n in everything.cold_nodes} == functions and len(functions) >= 5
    bars = everything.figures["cold"]["data"]
    assert sum(sum(bar["y"]) for bar in bars) == sum(n.figures.cold_starts for n in everything.cold_nodes if n.figures)
    bank = analytics_body(
        store.reader, window, None, Subject("bank-api/prod", "AWS::ApiGateway::Stage"), 60, "previous"
    )
    names = {n.name for n in bank.cold_nodes}
    assert "withdraw" in names and not names & {"resize-image", "analyze-posts", "publish-post"}
    assert {bar["name"] for bar in bank.figures["cold"]["data"]} == names
