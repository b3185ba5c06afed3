"""The web UI's data shaping, without a browser: what each page's data endpoint builds from a store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.cost.prices import PriceSheet
from collector.query.analytics import ValueComparison, WindowComparison
from collector.query.service_map import MapQuery
from collector.query.trace_view import SpanView
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Subject, TimeWindow
from tests.factories import SECOND, T0, at, spans_batch, stored_span, trace_key
from ui.web.data import analytics_body, map_body, trace_body
from ui.web.trace_figure import waterfall_figure

WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 600 * SECOND)
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    instance = DuckDBStore(str(tmp_path / "ui.duckdb"))
    instance.write(
        [
            spans_batch(
                at(1, 1, None, 0, 0.3, service="api", kind="SERVER"),
                at(1, 2, 1, 0.01, 0.25, service="api", kind="CLIENT", target_type="remote", target_name="fn"),
                at(1, 3, 2, 0.02, 0.2, service="fn", kind="SERVER", fault=True),
                at(1, 4, 3, 0.05, 0.01, service="fn", kind="PRODUCER", target_type="AWS::SQS::Queue", target_name="q"),
            ),
            spans_batch(at(2, 5, None, 1.0, 0.5, service="worker", kind="CONSUMER"), links=((5, 1, 4),)),
            spans_batch(at(3, 6, None, 2.0, 0.1, service=HOSTILE, kind="SERVER")),
        ]
    )
    instance.link_new_spans()
    yield instance
    instance.close()


def test_a_trace_page_holds_its_spans_its_consumers_and_the_critical_path(store: DuckDBStore) -> None:
    body = trace_body(store.reader, trace_key(1), PriceSheet.load())
    assert body is not None
    assert body.own_span_count == 4 and len(body.spans) == 5  # the linked consumer's span too
    assert body.critical_path[-1] == f"{5:016x}"  # the consumer finished last
    assert {s.service for s in body.spans} == {"api", "fn", "worker"}
    bars = [trace for trace in body.figure["data"] if trace["type"] == "bar"]
    assert sorted(trace["name"] for trace in bars) == ["api", "fn", "worker"]
    assert trace_body(store.reader, trace_key(404), PriceSheet.load()) is None


def test_the_map_page_draws_every_node_with_inert_labels(store: DuckDBStore) -> None:
    body = map_body(store.reader, MapQuery(WINDOW))
    names = {node.name for node in body.map.nodes}
    assert {"api", "fn", "q", "worker", HOSTILE} <= names
    assert set(body.histograms) == {node.id for node in body.map.nodes if node.figures is not None}
    labels = next(trace for trace in body.figure["data"] if trace.get("name") == "labels")
    assert not any("<img" in text for text in labels["text"])  # markup shown as text, never as HTML
    assert any("&lt;img" in text for text in labels["text"])


def test_the_analytics_page_has_series_a_comparison_and_the_nodes_to_pick(store: DuckDBStore) -> None:
    body = analytics_body(store.reader, WINDOW, None, Subject(), None, "previous")
    assert set(body.figures) == {"requests", "rates", "latency", "cold"}
    assert isinstance(body.comparison, WindowComparison)
    assert body.comparison.b.requests == 3  # three traces entered from outside
    assert {"api", "worker"} <= {node.name for node in body.nodes}
    by_version = analytics_body(store.reader, WINDOW, None, Subject("fn"), None, "function_version")
    assert isinstance(by_version.comparison, ValueComparison)
    assert by_version.comparison.field == "function_version"


def test_the_waterfall_outlines_the_critical_path_and_marks_flags() -> None:
    spans = [
        SpanView.of(stored_span(span_id="a", service="api", name="GET", start_ns=0, duration_ns=10_000_000)),
        SpanView.of(
            stored_span(span_id="b", parent_span_id="a", service="db", name="q", start_ns=10**6, duration_ns=5 * 10**6)
        ),
    ]
    spans[1] = dataclasses.replace(spans[1], fault=True)
    figure = waterfall_figure(spans, {"b"})
    bars = {trace["name"]: trace for trace in figure["data"] if trace["type"] == "bar"}
    assert bars["db"]["marker"]["line"]["width"] == [2.5]  # on the path
    assert bars["api"]["marker"]["line"]["width"] == [0.5]
    flags = [trace for trace in figure["data"] if trace["type"] == "scatter" and trace.get("customdata") == ["b"]]
    assert flags, "the fault is marked at the end of its span"
    assert figure["layout"]["yaxis"]["ticktext"][1].strip().startswith("db")
    assert waterfall_figure([], set()) == {"data": [], "layout": {}}
