"""The storage contract: every backend passes the same tests, through the Store Protocol only.

A backend adds its factory to BACKENDS (conftest.py): the DuckDB file, and a DuckLake on a throwaway
PostgreSQL catalog (tests/postgres_cluster.py). Tests of one backend's own machinery (a DuckDB
file's schema, locks, compression; the lake's collectors and leader) live beside it, in
tests/unit/collector/test_duckdb_store.py and tests/integration/test_lake.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from collector.insights.insight import Insight, InsightNode
from collector.model import SpanBatch, SpanBatchBuilder, SpanRow
from collector.query.service_map import MapQuery, service_map
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import (
    ByField,
    ByTimeBucket,
    Group,
    InsightScope,
    SpanLink,
    Statement,
    Store,
    StoreUnavailable,
    Subject,
    TimeWindow,
)
from spanlang.filter_parser import parse_filter
from tests.factories import at as span

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


def trace_bytes(n: int) -> bytes:
    return n.to_bytes(16, "big")


def batch(
    *rows: SpanRow,
    annotations: tuple[tuple[int, int, str, object], ...] = (),
    links: tuple[tuple[int, int, int, int], ...] = (),
) -> SpanBatch:
    builder = SpanBatchBuilder()
    for row in rows:
        builder.add_span(row)
    # Annotations and links carry their span's start, as every decoder writes them.
    start_of = {(row.trace_id, row.span_id): row.start_ns for row in rows}
    for trace, span_id, key, value in annotations:
        builder.add_annotation(trace_bytes(trace), span_id, start_of.get((trace_bytes(trace), span_id), T0), key, value)
    for trace, span_id, linked_trace, linked_span in links:
        start_ns = start_of.get((trace_bytes(trace), span_id), T0)
        builder.add_link(trace_bytes(trace), span_id, start_ns, trace_bytes(linked_trace), linked_span)
    return builder.build()


WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 3600 * SECOND)


def test_write_then_read_a_trace(store: Store) -> None:
    stored = store.write(
        [
            batch(
                span(1, 10, None, 0, http_status=200),
                span(1, 11, 10, 0.1, service="db"),
                span(1, 12, 11, 0.2),
                annotations=((1, 11, "customer", "c1"), (1, 11, "amount", 5), (1, 11, "vip", True)),
                links=((1, 12, 9, 99),),
            )
        ]
    )
    assert stored == 3
    spans = store.reader.trace_spans(trace_bytes(1))
    assert [s.span_id for s in spans] == [f"{i:016x}" for i in (10, 11, 12)]
    by_id = {s.span_id: s for s in spans}
    assert by_id[f"{11:016x}"].annotations == {"amount": 5.0, "customer": "c1", "vip": True}
    assert by_id[f"{12:016x}"].links == (SpanLink(f"{9:032x}", f"{99:016x}"),)
    assert by_id[f"{11:016x}"].parent_span_id == f"{10:016x}"
    assert (by_id[f"{10:016x}"].http_status, by_id[f"{11:016x}"].service) == (200, "db")
    assert store.reader.trace_spans(trace_bytes(404)) == []


def test_resent_spans_are_stored_once(store: Store) -> None:
    first = batch(span(2, 20, None, 1), span(2, 21, 20, 1.5), annotations=((2, 21, "k", "v"),))
    assert store.write([first]) == 2
    assert store.write([first, first]) == 0
    assert store.write([batch(span(2, 21, 20, 1.5), span(2, 22, 20, 1.6))]) == 1
    spans = store.reader.trace_spans(trace_bytes(2))
    assert len(spans) == 3
    assert spans[1].annotations == {"k": "v"}


def test_one_span_id_in_two_traces_is_two_spans_and_a_repeat_within_a_write_is_one(store: Store) -> None:
    assert store.write([batch(span(3, 30, None, 1), span(4, 30, None, 1)), batch(span(5, 50, None, 2))]) == 3
    assert store.write([batch(span(6, 60, None, 3), span(7, 60, None, 3)), batch(span(6, 60, None, 3))]) == 2
    assert [len(store.reader.trace_spans(trace_bytes(t))) for t in (3, 4, 5, 6, 7)] == [1, 1, 1, 1, 1]


def test_an_in_progress_span_is_replaced_by_its_completion(store: Store) -> None:
    # Only the X-Ray daemon protocol sends in-progress segments.
    store.write([batch(span(3, 30, None, 2, in_progress=True, duration_ns=0, source="xray"))])
    store.write([batch(span(3, 30, None, 2, duration_ns=40_000_000, source="xray"))])
    (only,) = store.reader.trace_spans(trace_bytes(3))
    assert (only.in_progress, only.duration_ns) == (False, 40_000_000)
    store.write([batch(span(3, 30, None, 2, in_progress=True, duration_ns=0, source="xray"))])  # a late copy
    (still,) = store.reader.trace_spans(trace_bytes(3))
    assert still.in_progress is False


def test_services_and_trace_search(store: Store) -> None:
    store.write(
        [
            batch(
                span(4, 40, None, 10, service="api", http_status=200),
                span(4, 41, 40, 10.1, service="ledger", fault=True),
                span(5, 50, None, 20, service="api", throttle=True, error=True, http_status=429),
                span(6, 60, None, 30, service="images", cold_start=True),
            )
        ]
    )
    services = {s.name: s.spans for s in store.reader.services(WINDOW)}
    assert services == {"api": 2, "images": 1, "ledger": 1}
    found = store.reader.search_traces(WINDOW, None, limit=10)
    assert [t.trace_id for t in found] == [f"{n:032x}" for n in (6, 5, 4)]  # newest first
    four = found[2]
    assert (four.root_service, four.span_count, four.services, four.fault) == ("api", 2, ("api", "ledger"), True)
    assert (found[1].throttle, found[1].http_status) == (True, 429)
    assert found[0].cold_start is True
    ledger = parse_filter('service("ledger")')
    assert [t.trace_id for t in store.reader.search_traces(WINDOW, ledger, limit=10)] == [f"{4:032x}"]
    assert len(store.reader.search_traces(WINDOW, None, limit=2)) == 2
    late = TimeWindow(T0 + 25 * SECOND, T0 + 3600 * SECOND)
    assert [t.trace_id for t in store.reader.search_traces(late, None, limit=10)] == [f"{6:032x}"]


def test_retention_deletes_old_spans_and_their_rows(store: Store) -> None:
    store.write(
        [batch(span(7, 70, None, 0), span(8, 80, None, 100), annotations=((7, 70, "k", 1),), links=((7, 70, 8, 80),))]
    )
    assert store.delete_older_than(T0 + 50 * SECOND) == 1
    assert store.reader.trace_spans(trace_bytes(7)) == []
    assert len(store.reader.trace_spans(trace_bytes(8))) == 1
    assert store.reader.linked_trace_ids(trace_bytes(8), 10) == []  # its link went with trace 7
    assert [(t.trace_id, t.span_count) for t in store.reader.search_traces(WINDOW, None, 10)] == [(f"{8:032x}", 1)]


def test_a_resource_is_read_back_with_each_of_its_spans(store: Store) -> None:
    shared, other = '{"service.name":"a","host":"h1"}', '{"service.name":"b"}'
    store.write([batch(span(1, 10, None, 0, resource=shared), span(1, 11, 10, 1, resource=shared))])
    store.write([batch(span(2, 20, None, 100, resource=shared), span(3, 30, None, 200, resource=other))])
    assert [s.resource for s in store.reader.trace_spans(trace_bytes(1))] == [{"service.name": "a", "host": "h1"}] * 2
    assert store.reader.trace_spans(trace_bytes(3))[0].resource == {"service.name": "b"}
    store.delete_older_than(T0 + 150 * SECOND)  # trace 3 alone is left
    store.write([batch(span(4, 40, None, 300, resource=shared))])  # `shared` comes back when used again
    assert store.reader.trace_spans(trace_bytes(4))[0].resource == {"service.name": "a", "host": "h1"}


def test_consumers_of_a_trace_are_found_by_their_links(store: Store) -> None:
    store.write(
        [
            batch(span(20, 200, None, 0)),
            batch(span(21, 210, None, 1), links=((21, 210, 20, 200),)),
            batch(span(22, 220, None, 2), links=((22, 220, 20, 200),)),
        ]
    )
    assert sorted(store.reader.linked_trace_ids(trace_bytes(20), 10)) == [trace_bytes(21), trace_bytes(22)]
    assert len(store.reader.linked_trace_ids(trace_bytes(20), 1)) == 1
    assert store.reader.linked_trace_ids(trace_bytes(21), 10) == []


def linked_calls(store: Store) -> None:
    """An API gateway called by a client calls `orders`, twice throttled by it, once fine."""
    for n, throttled in ((30, True), (31, True), (32, False)):
        store.write(
            [
                batch(
                    span(n, n * 10, None, n - 30, service="api", http_status=429 if throttled else 200, kind="SERVER"),
                    span(n, n * 10 + 1, n * 10, n - 30 + 0.1, service="api", kind="CLIENT", throttle=throttled),
                    span(n, n * 10 + 2, n * 10 + 1, n - 30 + 0.2, service="orders", kind="SERVER", throttle=throttled),
                )
            ]
        )
    store.link_new_spans(T0 + 3600 * SECOND)


def test_the_map_figures_of_linked_calls(store: Store) -> None:
    linked_calls(store)
    hops = store.reader.hop_rows(WINDOW, None, 1000)
    assert not hops.truncated
    requests: dict[tuple[object, ...], int] = {}
    for row in hops.counts:
        requests[(row[0], row[2], row[4])] = requests.get((row[0], row[2], row[4]), 0) + int(row[7])
    assert requests[(None, "api", "entry")] == 3
    assert requests[("api", "orders", "entry")] == 3
    assert sum(int(row[11]) for row in hops.counts if row[2] == "orders") == 2  # throttles
    assert {row[2] for row in hops.latency} == {"api", "orders"}
    (source,) = store.reader.throttle_sources(WINDOW, None, 10)
    assert (source.name, source.traces) == ("orders", 2)
    only_fine = parse_filter("http.status = 200")  # the one trace the gateway answered 200
    assert store.reader.throttle_sources(WINDOW, only_fine, 10) == []
    fine_rows = store.reader.hop_rows(WINDOW, only_fine, 1000).counts
    assert sum(int(row[7]) for row in fine_rows if row[2] == "orders") == 1


def test_analytics_figures_by_group(store: Store) -> None:
    linked_calls(store)
    orders = Subject("orders")
    (whole,) = store.reader.figure_rows(WINDOW, None, orders, None)
    assert whole[0] is True and whole[2] == 3  # the key, then the bucket and its count
    buckets = store.reader.figure_rows(WINDOW, None, orders, ByTimeBucket(T0, SECOND))
    assert sorted(row[0] for row in buckets) == [0, 1, 2]
    by_version = store.reader.figure_rows(WINDOW, None, orders, ByField("function_version"))
    assert {row[0] for row in by_version} == {"$LATEST"}
    assert store.reader.figure_rows(WINDOW, None, Subject("nobody"), None) == []


def test_a_closed_store_is_unavailable_to_every_read(store: Store) -> None:
    store.close()
    reader = store.reader
    reads: list[Callable[[], object]] = [
        lambda: reader.services(WINDOW),
        lambda: reader.trace_spans(uuid.uuid4().bytes),
        lambda: reader.linked_trace_ids(uuid.uuid4().bytes, 10),
        lambda: reader.search_traces(WINDOW, None, 10),
        lambda: reader.hop_rows(WINDOW, None, 10),
        lambda: reader.throttle_sources(WINDOW, None, 10),
        lambda: reader.figure_rows(WINDOW, None, Subject(), None),
    ]
    for read in reads:
        with pytest.raises(StoreUnavailable):
            read()


def test_groups_are_saved_replaced_listed_and_deleted(store: Store) -> None:
    assert store.groups.groups() == [] and store.groups.group("checkout") is None
    store.groups.save_group(Group("checkout", 'service("checkout")', 1))
    store.groups.save_group(Group("banking", "fault", 2))
    store.groups.save_group(Group("checkout", 'service("checkout") { fault }', 3))  # a new expression
    assert store.groups.groups() == [
        Group("banking", "fault", 2),
        Group("checkout", 'service("checkout") { fault }', 3),
    ]
    assert store.groups.group("checkout") == Group("checkout", 'service("checkout") { fault }', 3)
    assert store.groups.delete_group("banking") is True
    assert store.groups.delete_group("banking") is False
    assert [g.name for g in store.groups.groups()] == ["checkout"]


def test_insights_are_saved_replaced_and_read_by_window(store: Store) -> None:
    root = InsightNode("n1", "ledger", "remote")
    opened = Insight("a", None, "fault", "open", 100, None, root, (root,), 10, 5, 0.5, 0.01, 1e-9, "fault", 100)
    other = Insight("b", "banking", "throttle", "open", 300, None, root, (root,), 10, 5, 0.5, 0.01, 1e-9, "x", 300)
    store.insights.save_insights([opened, other])
    closed = dataclasses.replace(opened, state="closed", end_ns=200, updated_ns=200)
    store.insights.save_insights([closed])
    assert store.insights.insights(0, 1000, 10) == [other, closed]  # newest first
    assert store.insights.insights(250, 1000, 10) == [other]  # closed before the window
    assert store.insights.insights(150, 250, 10) == [closed]
    assert store.insights.open_insights() == [other]
    # one scope, chosen before the limit: another group's newer insight does not crowd it out
    assert store.insights.insights(0, 1000, 1, InsightScope(None)) == [closed]
    assert store.insights.insights(0, 1000, 10, InsightScope("banking", "open")) == [other]
    assert store.insights.insights(0, 1000, 10, InsightScope("banking", "closed")) == []
    store.insights.delete_closed_before(250)
    assert store.insights.insights(0, 1000, 10) == [other]


def group_traffic(first: int, minutes: int, late: bool = False) -> SpanBatch:
    """api -> orders or payments, 12 requests a minute from T0; a fault in every fifth, a throttle in every seventh."""
    rows = []
    for n in range(minutes * 12):
        trace, start_s = first + n, n * 5.0 + (0.5 if late else 0.0)
        callee = "orders" if n % 3 else "payments"
        rows += [
            span(trace, 1, None, start_s, 0.05, service="api", kind="SERVER", fault=n % 5 == 0),
            span(
                trace,
                2,
                1,
                start_s + 0.001,
                0.04,
                service="api",
                kind="CLIENT",
                target_type="remote",
                target_name=callee,
            ),
            span(
                trace, 3, 2, start_s + 0.002, 0.03, service=callee, kind="SERVER", fault=n % 5 == 0, throttle=n % 7 == 0
            ),
        ]
    return batch(*rows)


def rows_of(store: Store, text: str) -> list[tuple[Any, ...]]:
    """A query of the backend's own tables (every backend here is a DuckDBStore, file or lake)."""
    assert isinstance(store, DuckDBStore)
    return store.reader.rows(Statement(text))


def test_a_groups_map_from_its_rollup_is_its_map_from_raw_calls(store: Store) -> None:
    store.write([group_traffic(1000, 10)])
    store.groups.save_group(Group("orders", 'service("orders")', 1))
    settled_ns = T0 + 3600 * SECOND
    store.link_new_spans(settled_ns)
    store.roll_up_calls(settled_ns)  # the main rollup, then the group's (from the oldest call)
    window = TimeWindow(T0 - 20 * 60 * SECOND, T0 + 20 * 60 * SECOND)

    def both(name: str) -> tuple[object, object]:
        saved = store.groups.group(name)
        assert saved is not None
        expr = parse_filter(saved.filter)
        return (
            service_map(store.reader, MapQuery(window, expr, group=name)),
            service_map(store.reader, MapQuery(window, expr)),
        )

    rolled, raw = both("orders")
    assert rolled == raw and {n.name for n in raw.nodes} == {"client", "api", "orders"}  # type: ignore[attr-defined]
    assert raw.throttle_sources  # type: ignore[attr-defined]  # counted from the rollup too
    rolled_rows = "SELECT count(*), min(minute), max(minute) FROM group_minutes"
    ((count, first_minute, last_minute),) = rows_of(store, rolled_rows)
    minute = 60 * SECOND
    last_start = T0 + (10 * 12 - 1) * 5 * SECOND
    assert count > 0 and (first_minute, last_minute) == (T0 // minute * minute, last_start // minute * minute)
    # late calls behind both watermarks: the main rollup counts them, and the group rolls the minutes again
    store.write([group_traffic(5000, 4, late=True)])
    store.link_new_spans(settled_ns)
    ((dirty,),) = rows_of(store, "SELECT count(DISTINCT minute) FROM rollup_dirty")
    assert dirty == 5  # the late calls' minutes (T0 is 20 s past a minute)
    store.roll_up_calls(settled_ns)
    assert rows_of(store, "SELECT count(*) FROM rollup_dirty") == [(0,)]
    rolled, raw = both("orders")
    assert rolled == raw
    # a new expression: rolled again from the start
    store.groups.save_group(Group("orders", 'service("orders") { fault }', 2))
    store.roll_up_calls(settled_ns)
    rolled, raw = both("orders")
    assert rolled == raw


def sampled_traffic() -> SpanBatch:
    """api -> orders over ten minutes as a tracer at 1% head sampling with tail-keep sends it: 30
    sampled traces (weight 100 on each span), 6 more kept for a fault at orders (weight 0)."""
    rows = []
    for n in range(36):
        kept_for_fault = n >= 30
        weight = 0.0 if kept_for_fault else 100.0
        start_s, took_s = n * 16.0, 5.0 if kept_for_fault else 0.02 + n / 1000
        rows += [
            span(10_000 + n, 1, None, start_s, took_s, service="api", kind="SERVER", sampling_weight=weight),
            span(
                10_000 + n,
                2,
                1,
                start_s + 0.001,
                took_s - 0.002,
                service="orders",
                kind="SERVER",
                fault=kept_for_fault,
                sampling_weight=weight,
            ),
        ]
    return batch(*rows)


def test_sampled_calls_stand_for_their_weight_in_the_map_from_raw_calls_and_the_rollup(store: Store) -> None:
    store.write([sampled_traffic()])
    settled_ns = T0 + 3600 * SECOND
    store.link_new_spans(settled_ns)
    window = TimeWindow(T0 - 2 * 60 * SECOND, T0 + 20 * 60 * SECOND)
    raw = service_map(store.reader, MapQuery(window, None))
    store.roll_up_calls(settled_ns)
    assert rows_of(store, "SELECT count(*) > 0, sum(estimated) FROM call_minutes") == [(True, 6000.0)]
    rolled = service_map(store.reader, MapQuery(window, None))
    assert rolled == raw
    orders = next(node for node in rolled.nodes if node.name == "orders")
    shown = orders.figures
    assert shown is not None
    assert (shown.requests, shown.stored_requests, shown.faults) == (3000, 36, 6)
    assert shown.fault_rate == 6 / 3000
    assert shown.p99_ms is not None and shown.p99_ms < 100  # the 5 s failures kept by tail-keep stand for none
