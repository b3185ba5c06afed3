"""Analytics time series and comparisons, and the critical path of a trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.query.analytics import compare_values, compare_windows, step_ns_for, time_series
from collector.query.critical_path import critical_path, critical_path_of, trace_with_consumers
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import SpanLink, StoredSpan, Subject, TimeWindow
from tests.factories import SECOND, T0, at, spans_batch, stored_span, trace_key

WINDOW = TimeWindow(T0, T0 + 60 * SECOND)
FN = {"service": "fn", "origin": "AWS::Lambda::Function"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    instance = DuckDBStore(str(tmp_path_factory.mktemp("analytics") / "a.duckdb"))
    batches = []
    # Minute 0-30: version 1, 10 requests of 100 ms, one fault. Minute 30-60: version 2, 10 of 300 ms.
    for i in range(20):
        version = "1" if i < 10 else "2"
        cold = i in (0, 10)
        start = i * 3 + 1
        rows = [
            at(i, i * 10 + 1, None, start, 0.01 * (i + 1), service="api", http_status=200),
            at(
                i,
                i * 10 + 2,
                i * 10 + 1,
                start + 0.001,
                0.1 if i < 10 else 0.3,
                fault=(i == 3),
                function_version=version,
                cold_start=cold,
                **FN,
            ),
        ]
        batches.append(spans_batch(*rows))
    instance.write(batches)
    instance.link_new_spans()
    yield instance
    instance.close()


def test_time_series_of_all_incoming_requests(store: DuckDBStore) -> None:
    body = time_series(store.reader, WINDOW, None, Subject(), step_s=30)
    assert body.step_s == 30.0
    assert [p.requests for p in body.points] == [10, 10]
    assert [p.start_ns for p in body.points] == [T0, T0 + 30 * SECOND]


def test_time_series_of_one_node(store: DuckDBStore) -> None:
    body = time_series(store.reader, WINDOW, None, Subject("fn", "AWS::Lambda::Function"), step_s=30)
    first, second = body.points
    assert (first.requests, first.faults, first.fault_rate) == (10, 1, 0.1)
    assert first.p50_ms == pytest.approx(100.0) and second.p99_ms == pytest.approx(300.0)
    assert first.cold_starts == 1 and first.requests_per_s == pytest.approx(10 / 30)


def test_time_series_of_one_edge(store: DuckDBStore) -> None:
    body = time_series(store.reader, WINDOW, None, Subject("fn", caller="api"), step_s=60)
    assert [p.requests for p in body.points] == [20]
    assert time_series(store.reader, WINDOW, None, Subject("fn", caller="nobody"), step_s=60).points == ()


def test_steps_are_bounded() -> None:
    assert step_ns_for(WINDOW, None) == SECOND
    assert step_ns_for(TimeWindow(0, 3600 * SECOND), 0.001) == 3600 * SECOND // 1000


def test_compare_two_windows(store: DuckDBStore) -> None:
    current = TimeWindow(T0 + 30 * SECOND, T0 + 60 * SECOND)
    baseline = TimeWindow(T0, T0 + 30 * SECOND)
    body = compare_windows(store.reader, current, baseline, None, Subject("fn"))
    assert body.a.p50_ms == pytest.approx(100.0) and body.b.p50_ms == pytest.approx(300.0)
    assert body.delta.p50_ms == pytest.approx(200.0)
    assert body.delta.fault_rate == pytest.approx(-0.1)


def test_compare_function_versions_and_cold_vs_warm(store: DuckDBStore) -> None:
    versions = compare_values(store.reader, WINDOW, None, Subject("fn"), "function_version")
    assert versions.a is not None and versions.b is not None and versions.delta is not None
    assert (versions.a.label, versions.b.label) == ("1", "2")
    assert versions.delta.p90_ms == pytest.approx(200.0)
    cold = compare_values(store.reader, WINDOW, None, Subject("fn"), "cold_start")
    assert {g.label: g.requests for g in cold.groups} == {"False": 18, "True": 2}


def span(span_id: str, parent: str | None, start_ms: float, duration_ms: float, **extra: Any) -> StoredSpan:
    links = tuple(SpanLink(**link) for link in extra.pop("links", ()))
    return stored_span(
        span_id=span_id,
        parent_span_id=parent,
        trace_id=extra.pop("trace", "t1"),
        name=span_id,
        start_ns=int(start_ms * 1e6),
        duration_ns=int(duration_ms * 1e6),
        links=links,
    )


def test_critical_path_follows_the_last_finishing_children() -> None:
    spans = [
        span("root", None, 0, 100),
        span("auth", "root", 5, 10),
        span("fetch", "root", 20, 60),  # fast parallel sibling below is not on the path
        span("cache", "root", 20, 5),
        span("db", "fetch", 30, 40),
    ]
    path = [(s.span_id, (s.end_ns - s.start_ns) / 1e6) for s in critical_path(spans)]
    assert path == [
        ("root", 5.0),
        ("auth", 10.0),
        ("root", 5.0),
        ("fetch", 10.0),
        ("db", 40.0),
        ("fetch", 10.0),
        ("root", 20.0),
    ]
    assert sum(d for _, d in path) == pytest.approx(100.0)


def test_critical_path_follows_async_links_past_the_producer() -> None:
    spans = [
        span("api", None, 0, 50),
        span("send", "api", 10, 5),
        span("consume", None, 2000, 300, trace="t2", links=[{"trace_id": "t1", "span_id": "send"}]),
        span("write", "consume", 2100, 150, trace="t2"),
    ]
    body = critical_path_of(b"t1", spans)
    ids = [s.span_id for s in body.segments]
    assert ids[-3:] == ["consume", "write", "consume"]
    assert "send" in ids and body.duration_ms == pytest.approx(2300.0)


def test_critical_path_loads_consumer_traces_from_the_store(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "cp.duckdb"))
    try:
        store.write(
            [
                spans_batch(at(1, 1, None, 0, 0.05), at(1, 2, 1, 0.01, 0.005)),
                spans_batch(at(2, 3, None, 2, 0.3, service="billing"), links=((3, 1, 2),)),
            ]
        )
        store.link_new_spans()
        spans = trace_with_consumers(store.reader, trace_key(1))
        body = critical_path_of(trace_key(1), spans)
        assert body.segments[-1].service == "billing"
        assert body.duration_ms == pytest.approx(2300.0)
    finally:
        store.close()


def test_a_step_past_the_window_is_the_window_however_large() -> None:
    window = TimeWindow(0, 60 * SECOND)
    assert step_ns_for(window, float("inf")) == 60 * SECOND
    assert step_ns_for(window, 1e308) == 60 * SECOND
    assert step_ns_for(window, 10.0) == 10 * SECOND
