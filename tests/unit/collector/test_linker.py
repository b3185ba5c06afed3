"""The linker, alone: spans in, calls out, with what storage would keep held in memory here.

Its promise is one rule set: a trace's calls are the same whatever order and grouping its
spans arrive in (one run, one run per service, children before parents), because pairs are
made by the same rules wherever each partner was found.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pyarrow as pa
import pytest

from collector.model import SpanBatch
from collector.service_map.linker import expired_calls, link, prepare
from collector.service_map.roles import LINKED_SPAN_COLUMNS, PARTNER_COLUMNS, PARTNER_SCHEMA, WANT_SCHEMA
from tests.factories import SECOND, T0, at, spans_batch, trace_key

CallKey = tuple[object, ...]


@dataclass
class HeldInMemory:
    """What storage keeps between runs (stored spans, waiting children, calls), as plain Python."""

    spans: list[dict[str, object]] = field(default_factory=list)
    waiting: pa.Table = field(default_factory=WANT_SCHEMA.empty_table)
    calls: list[dict[str, object]] = field(default_factory=list)

    def run(self, batches: list[SpanBatch], now_ns: int = T0) -> None:
        """One link run over `batches` (already stored, as the daemon links after its commit)."""
        spans = pa.concat_tables([b.spans.select(LINKED_SPAN_COLUMNS) for b in batches])
        links = pa.concat_tables([b.links for b in batches])
        prepared = prepare(spans, links)
        own = {(r["trace_id"], r["span_id"]) for r in prepared.own_keys().to_pylist()}
        wanted = {(r["trace_id"], r["span_id"]) for r in prepared.wanted_keys().to_pylist()}
        earliest_ns, latest_ns = prepared.wanted_start_range()
        partners = [
            s
            for s in self.spans
            if (s["trace_id"], s["span_id"]) in wanted and earliest_ns <= int(str(s["start_ns"])) <= latest_ns
        ]
        rows = self.waiting.to_pylist()
        wanting = [r for r in rows if (r["want_trace_id"], r["want_span_id"]) in own]
        waiting = pa.Table.from_pylist(wanting, schema=WANT_SCHEMA)
        linked = link(prepared, pa.Table.from_pylist(partners, schema=PARTNER_SCHEMA), waiting)
        met = {tuple(r.values()) for r in linked.met.to_pylist()}
        kept = [r for r in self.waiting.to_pylist() if tuple(r.values()) not in met]
        self.waiting = pa.Table.from_pylist(kept + linked.still_waiting.to_pylist(), schema=WANT_SCHEMA)
        gone = {(r["trace_id"], r["span_id"], r["start_ns"]) for r in linked.superseded.to_pylist()}
        self.calls = [
            c
            for c in self.calls
            if not (c["role"] == "inferred" and (c["trace_id"], c["span_id"], c["start_ns"]) in gone)
        ]
        self.calls += linked.calls.to_pylist()
        self.spans += spans.select(["trace_id", "span_id", *PARTNER_COLUMNS]).to_pylist()

    def expire(self) -> None:
        self.calls += expired_calls(self.waiting).to_pylist()
        self.waiting = WANT_SCHEMA.empty_table()

    def call_keys(self) -> list[CallKey]:
        columns = ("span_id", "role", "caller", "caller_type", "callee", "callee_type", "async", "dwell_ns", "init_ns")
        return sorted((tuple(c[k] for k in columns) for c in self.calls), key=repr)


def services_of_one_trace() -> list[SpanBatch]:
    """api -> orders (a cold start, with its init), orders -> DynamoDB (not instrumented) and
    orders -> an SQS queue -> worker (linked), one batch per process."""
    api = spans_batch(
        at(1, 1, None, 0, 0.5, service="api", kind="SERVER"),
        at(1, 2, 1, 0.01, 0.4, service="api", kind="CLIENT", target_type="remote", target_name="orders.local"),
    )
    orders = spans_batch(
        at(1, 3, 2, 0.02, 0.3, service="orders", kind="SERVER", cold_start=True, origin="AWS::Lambda::Function"),
        at(1, 4, 2, 0.0, 0.015, service="orders", name="Initialization", origin="AWS::Lambda::Function"),
        at(1, 5, 3, 0.05, 0.01, service="orders", kind="CLIENT", target_type="AWS::DynamoDB::Table", target_name="t"),
        at(1, 6, 3, 0.1, 0.01, service="orders", kind="PRODUCER", target_type="AWS::SQS::Queue", target_name="q"),
    )
    worker = spans_batch(at(2, 7, None, 1.0, 0.2, service="worker", kind="CONSUMER"), links=((7, 1, 6),))
    return [api, orders, worker]


def one_run() -> list[CallKey]:
    held = HeldInMemory()
    held.run(services_of_one_trace())
    return held.call_keys()


def test_one_run_makes_every_kind_of_call() -> None:
    by_role: dict[object, list[CallKey]] = {}
    for key in one_run():
        by_role.setdefault(key[1], []).append(key)
    entries = {(k[2], k[4]) for k in by_role["entry"]}
    assert entries == {(None, "api"), ("api", "orders"), (None, "worker")}  # the consumer's root too
    (init,) = by_role["init"]
    assert (init[4], init[8]) == ("orders", 15_000_000)
    cold_entry = next(k for k in by_role["entry"] if k[4] == "orders")
    assert cold_entry[8] == 15_000_000  # the entry carries its cold start's init duration
    assert {(k[2], k[4], k[6]) for k in by_role["inferred"]} == {("orders", "t", False), ("orders", "q", True)}
    (consumed,) = by_role["link"]
    assert (consumed[2], consumed[4], consumed[6]) == ("q", "worker", True)
    assert consumed[7] == 1.0 * SECOND - int(0.11 * SECOND)  # dwell: consumer start - producer end


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_calls_are_the_same_whatever_order_the_services_arrive_in(order: tuple[int, ...]) -> None:
    batches = services_of_one_trace()
    held = HeldInMemory()
    for position, index in enumerate(order):
        held.run([batches[index]], now_ns=T0 + position * SECOND)
    assert held.waiting.num_rows == 0
    assert held.call_keys() == one_run()


def test_a_child_whose_parent_never_comes_becomes_an_entry_from_an_unknown_caller() -> None:
    held = HeldInMemory()
    _, orders, worker = services_of_one_trace()
    held.run([worker])
    assert [r["relation"] for r in held.waiting.to_pylist()] == ["link"]  # its producer has not come yet
    held.run([orders])  # the producer comes; the parent of orders' handler never does
    assert [r["relation"] for r in held.waiting.to_pylist()] == ["parent"]
    held.expire()
    entries = sorted((k[2], k[4], k[8]) for k in held.call_keys() if k[1] == "entry")
    assert entries == [(None, "orders", 15_000_000), (None, "worker", None)]  # the cold start's init kept
    assert {k[1] for k in held.call_keys()} == {"entry", "init", "inferred", "link"}


def test_a_parent_outside_the_lookback_is_not_a_partner() -> None:
    held = HeldInMemory()
    held.run([spans_batch(at(3, 1, None, 0, 0.1, service="a"))])
    held.run([spans_batch(at(3, 2, 1, 45, 0.1, service="b"))])  # 45 s later: past LOOKBACK_NS
    assert [r["want_trace_id"].bytes for r in held.waiting.to_pylist()] == [trace_key(3)]
