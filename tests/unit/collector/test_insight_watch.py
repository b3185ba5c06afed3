"""The insight watch over a real store: 16 minutes of calls, the last one failing in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.insights.watch import InsightSettings, InsightWatch
from collector.model import SpanBatch
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Group
from tests.factories import SECOND, T0, at, spans_batch

MINUTES = 16
PER_MINUTE = 40
NOW_NS = T0 + (MINUTES * 60 + 10) * SECOND
SETTINGS = InsightSettings(current_s=60, baseline_s=900, lag_s=5)


def request(trace: int, start_s: float, ledger_fails: bool, service: str = "orders") -> SpanBatch:
    """gateway -> orders -> ledger (an inferred remote)."""
    return spans_batch(
        at(trace, 1, None, start_s, 0.05, service="gateway", kind="SERVER", fault=ledger_fails),
        at(
            trace,
            2,
            1,
            start_s + 0.001,
            0.04,
            service="gateway",
            kind="CLIENT",
            target_type="remote",
            target_name=service,
        ),
        at(trace, 3, 2, start_s + 0.002, 0.03, service=service, kind="SERVER", fault=ledger_fails),
        at(
            trace,
            4,
            3,
            start_s + 0.003,
            0.02,
            service=service,
            kind="CLIENT",
            target_type="remote",
            target_name="ledger",
            fault=ledger_fails,
            http_status=503 if ledger_fails else 200,
        ),
    )


def write_run(store: DuckDBStore, failing_from_s: float) -> None:
    batches = []
    for n in range(MINUTES * PER_MINUTE):
        start_s = n * 60 / PER_MINUTE
        batches.append(request(n + 1, start_s, ledger_fails=start_s >= failing_from_s and n % 2 == 0))
    store.write(batches)
    store.link_new_spans(NOW_NS)
    store.roll_up_calls(NOW_NS - 120 * SECOND)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    instance = DuckDBStore(str(tmp_path / "w.duckdb"))
    yield instance
    instance.close()


def test_a_fault_in_the_last_minute_opens_an_insight_at_the_ledger(store: DuckDBStore) -> None:
    write_run(store, failing_from_s=(MINUTES - 1) * 60)
    store.groups.save_group(Group("orders", 'service("orders")', 1))
    watch = InsightWatch(store.reader, store.groups, store.insights, SETTINGS)
    assert watch.run(NOW_NS - 10 * SECOND) == []  # seen once: not yet
    changed = watch.run(NOW_NS)
    assert {(i.group, i.kind, i.root_cause.name) for i in changed} == {
        (None, "fault", "ledger"),
        ("orders", "fault", "ledger"),
    }
    everything = next(i for i in changed if i.group is None)
    assert {n.name for n in everything.impacted} >= {"ledger", "orders", "gateway"}
    assert everything.failures >= 15 and everything.share >= 0.4
    assert everything.traces == everything.failures  # one faulted ledger call a trace
    in_group = next(i for i in changed if i.group == "orders")
    assert in_group.traces == everything.traces  # every failing trace went through orders
    assert store.insights.open_insights() and store.insights.insights(NOW_NS - SECOND, NOW_NS + SECOND, 10)
    # restarted: the store's open insights carry on, and close once the map is calm again
    later = InsightWatch(store.reader, store.groups, store.insights, SETTINGS)
    closed = []
    for minute in range(1, 4):
        closed += [i for i in later.run(NOW_NS + minute * 600 * SECOND) if i.state == "closed"]
    assert {i.id for i in closed} == {i.id for i in changed}
    assert all(i.traces > 0 for i in closed)  # closed with the count they had
    assert store.insights.open_insights() == []


def test_a_steady_run_opens_nothing(store: DuckDBStore) -> None:
    write_run(store, failing_from_s=10**9)
    watch = InsightWatch(store.reader, store.groups, store.insights, SETTINGS)
    assert watch.run(NOW_NS - 10 * SECOND) == [] and watch.run(NOW_NS) == []


def test_a_deleted_group_closes_its_insights(store: DuckDBStore) -> None:
    write_run(store, failing_from_s=(MINUTES - 1) * 60)
    store.groups.save_group(Group("orders", 'service("orders")', 1))
    watch = InsightWatch(store.reader, store.groups, store.insights, SETTINGS)
    watch.run(NOW_NS - 10 * SECOND)
    assert any(i.group == "orders" for i in watch.run(NOW_NS))
    store.groups.delete_group("orders")
    closed = [i for tick in range(1, 4) for i in watch.run(NOW_NS + tick * SECOND) if i.group == "orders"]
    assert [i.state for i in closed] == ["closed"]


def test_a_collector_that_does_not_lead_watches_nothing(store: DuckDBStore) -> None:
    write_run(store, failing_from_s=(MINUTES - 1) * 60)
    watch = InsightWatch(store.reader, store.groups, store.insights, SETTINGS, leading=lambda: False)
    assert watch.run(NOW_NS - 10 * SECOND) == [] and watch.run(NOW_NS) == []
