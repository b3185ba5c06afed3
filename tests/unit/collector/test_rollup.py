"""The per-minute rollup never changes an answer: a map read from minutes + raw calls equals the
map from raw calls alone, with late spans and superseded guesses arriving after the roll-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.model import SpanBatch
from collector.query.map_view import ServiceMap
from collector.query.service_map import MapQuery, service_map
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement, TimeWindow
from tests.factories import SECOND, T0, at, spans_batch
from tests.unit.collector.map_support import chain_batches


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[DuckDBStore, DuckDBStore]]:
    rolled, raw = DuckDBStore(str(tmp_path / "rolled.duckdb")), DuckDBStore(str(tmp_path / "raw.duckdb"))
    yield rolled, raw
    rolled.close()
    raw.close()


def write_both(stores: tuple[DuckDBStore, DuckDBStore], batches: list[SpanBatch]) -> None:
    for store in stores:
        for batch in batches:
            store.write([batch])
        store.link_new_spans()


def comparable(body: ServiceMap) -> dict[str, Any]:
    return {"nodes": body.nodes, "edges": body.edges, "throttle_sources": body.throttle_sources}


def early_traffic() -> list[SpanBatch]:
    batches = []
    for trace in range(1, 40):
        batches += chain_batches(trace, trace * 7.3, fault_in_c=trace % 5 == 0)
    batches.append(
        spans_batch(
            at(90, 1, None, 100, 0.2, service="fn", origin="AWS::Lambda::Function", cold_start=True),
            at(90, 2, None, 99.5, 0.5, service="fn", origin="AWS::Lambda::Function", name="Initialization"),
        )
    )
    return batches


@pytest.mark.parametrize(
    "window",
    [
        TimeWindow(T0 - 60 * SECOND, T0 + 3600 * SECOND),
        TimeWindow(T0 + 17 * SECOND, T0 + 250 * SECOND),  # partial minutes at both ends
    ],
)
def test_a_rolled_up_map_equals_the_raw_map(stores: tuple[DuckDBStore, DuckDBStore], window: TimeWindow) -> None:
    rolled, raw = stores
    write_both(stores, early_traffic())
    rolled.roll_up_calls(settled_before_ns=T0 + 3600 * SECOND)
    assert rolled.reader.rows(Statement("SELECT count(*) FROM call_minutes"))[0][0] > 0
    assert comparable(service_map(rolled.reader, MapQuery(window))) == comparable(
        service_map(raw.reader, MapQuery(window))
    )


def test_late_spans_and_superseded_guesses_after_the_roll_up(stores: tuple[DuckDBStore, DuckDBStore]) -> None:
    rolled, raw = stores
    write_both(stores, early_traffic())
    # Trace 200's caller stored now with its guess (an inferred b.local), its callee much later.
    first, second, third = chain_batches(200, 30, fault_in_c=True)
    write_both(stores, [first])
    rolled.roll_up_calls(settled_before_ns=T0 + 3600 * SECOND)
    write_both(stores, [second, third, *chain_batches(201, 45, fault_in_c=False)])
    for store in stores:
        store.expire_pending_calls(waited_since_ns=2**62)
    window = TimeWindow(T0 - 60 * SECOND, T0 + 3600 * SECOND)
    after = service_map(rolled.reader, MapQuery(window))
    assert comparable(after) == comparable(service_map(raw.reader, MapQuery(window)))
    names = {n.name for n in after.nodes}
    assert "b.local:80" not in names  # the retracted guess left no trace


def test_the_watermark_only_moves_forward_by_whole_minutes(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "w.duckdb"))
    try:
        store.write(early_traffic())
        store.link_new_spans()
        store.roll_up_calls(T0 + 90 * SECOND + 5)
        (until,) = store.reader.rows(Statement("SELECT rolled_until FROM rollup_state"))[0]
        assert until % (60 * SECOND) == 0 and until <= T0 + 90 * SECOND
        store.roll_up_calls(T0)  # earlier: nothing happens
        assert store.reader.rows(Statement("SELECT rolled_until FROM rollup_state"))[0][0] == until
    finally:
        store.close()
