"""Two traces aligned: matched spans with their duration differences, spans only one has."""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.query.trace_compare import compare_traces
from collector.storage.protocols import StoredSpan
from tests.factories import SECOND, stored_span


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    service: str,
    name: str,
    start_s: float,
    duration_ms: float,
    **fields: Any,
) -> StoredSpan:
    return stored_span(
        trace_id=trace, span_id=span_id, parent_span_id=parent, service=service, name=name,
        start_ns=int(start_s * SECOND), duration_ns=int(duration_ms * 1e6), **fields,
    )  # fmt: skip


def test_matching_spans_line_up_and_the_rest_is_marked() -> None:
    a = [
        span("a", "1", None, "api", "GET /x", 0, 100),
        span("a", "2", "1", "fn", "handler", 0.01, 80),
        span("a", "3", "2", "fn", "DynamoDB.GetItem", 0.02, 10),
        span("a", "4", "2", "fn", "DynamoDB.GetItem", 0.04, 12),
    ]
    b = [
        span("b", "11", None, "api", "GET /x", 0, 300, fault=True),
        span("b", "12", "11", "fn", "Initialization", 0.001, 150, cold_start=True),
        span("b", "13", "11", "fn", "handler", 0.2, 90),
        span("b", "14", "13", "fn", "DynamoDB.GetItem", 0.21, 11),
    ]
    compared = compare_traces(a, b)
    shown = [
        (r.depth, r.name, r.a.span_id if r.a else None, r.b.span_id if r.b else None, r.delta_ms) for r in compared.rows
    ]
    assert shown == [
        (0, "GET /x", "1", "11", 200.0),
        (1, "handler", "2", "13", 10.0),
        (2, "DynamoDB.GetItem", "3", "14", 1.0),
        (2, "DynamoDB.GetItem", "4", None, None),  # the second call: only in A
        (1, "Initialization", None, "12", None),  # the cold start: only in B
    ]
    assert (compared.only_in_a, compared.only_in_b) == (1, 1)
    assert compared.rows[0].b is not None and compared.rows[0].b.fault
    assert (compared.a_duration_ms, compared.b_duration_ms) == (100.0, 300.0)


def test_a_deep_trace_is_compared_without_recursion() -> None:
    chain = [span("a", "0", None, "s", "op", 0, 1)] + [
        span("a", str(i), str(i - 1), "s", "op", i / 1e6, 1) for i in range(1, 5000)
    ]
    other = [dataclasses.replace(s, trace_id="b") for s in chain[:2500]]
    compared = compare_traces(chain, other)
    assert len(compared.rows) == 5000 and compared.only_in_a == 2500 and compared.rows[-1].depth == 4999


def test_an_orphan_is_a_root_and_empty_traces_compare() -> None:
    orphan = [span("a", "5", "missing", "s", "late", 0, 1)]
    assert [r.name for r in compare_traces(orphan, []).rows] == ["late"]
    assert compare_traces([], []).rows == ()
