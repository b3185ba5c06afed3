"""What waits for the linker is bounded: a run over a backlog links it in parts, each in a
transaction of its own, and leaves the same map as one transaction over it all; the spans
waiting hold copies of the columns linking reads, never the decoded batches they came in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from collector.model import SpanBatch
from collector.normalize.otlp_proto import decode_protobuf
from collector.service_map.linker import PreparedRun, prepare
from collector.storage import duckdb_calls
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement, StoreUnavailable
from tests.demo_run import MINUTE_NS, recorded
from tests.unit.collector.test_derive import span_message, spans_request

MAP_TABLES = ("calls", "pending", "throttled_calls")
PART_ROWS = 97  # parts that cut through traces, cold starts and their inits, and links


def linked(path: Path, run_rows: int | None, runs: int = 1) -> dict[str, list[tuple[Any, ...]]]:
    """The recorded demo run stored in one write and linked, its map tables' rows."""
    spans, annotations, links = recorded()
    at_ns = int(pc.max(spans.column("start_ns")).as_py()) + 10 * MINUTE_NS
    store = DuckDBStore(str(path))
    try:
        store.map_tables.run_rows = run_rows
        store.write([SpanBatch(spans, annotations, links)])
        for _ in range(runs):
            try:
                store.link_new_spans(at_ns)
            except StoreUnavailable:
                continue
        store.expire_pending_calls(at_ns + 1)
        return {table: store.reader.rows(Statement(f"SELECT * FROM {table} ORDER BY ALL")) for table in MAP_TABLES}
    finally:
        store.close()


def test_a_run_in_parts_leaves_the_map_one_transaction_leaves(tmp_path: Path) -> None:
    whole = linked(tmp_path / "whole.duckdb", None)
    assert len(whole["calls"]) > 1000 and recorded()[2].num_rows  # the demo's hops, links among them
    assert linked(tmp_path / "parts.duckdb", PART_ROWS) == whole


def test_a_store_failure_in_a_part_leaves_the_rest_to_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = linked(tmp_path / "whole.duckdb", None)
    parts_seen = 0

    def failing_third_part_once(spans: pa.Table, links: pa.Table, stored_inits: pa.Table | None = None) -> PreparedRun:
        nonlocal parts_seen
        parts_seen += 1
        if parts_seen == 3:
            raise StoreUnavailable("the disk went away for a moment")
        return prepare(spans, links, stored_inits)

    monkeypatch.setattr(duckdb_calls, "prepare", failing_third_part_once)
    assert linked(tmp_path / "parts.duckdb", PART_ROWS, runs=2) == whole
    assert parts_seen > 3


def buffer_addresses(table: pa.Table) -> set[int]:
    return {b.address for column in table.columns for chunk in column.chunks for b in chunk.buffers() if b}


def test_the_spans_waiting_to_be_linked_keep_no_decoded_batch_alive(tmp_path: Path) -> None:
    # The C decoder's columns share one release: a view of any kept the whole batch resident.
    request = spans_request([span_message({"http.route": "/a"}, span_id=n) for n in range(1, 6)], {"service.name": "s"})
    batch = decode_protobuf(request)
    store = DuckDBStore(str(tmp_path / "queue.duckdb"))
    try:
        store.write([batch])
        ((waiting, _),) = store.map_tables._unlinked
        assert waiting.num_rows == batch.span_count
        assert not buffer_addresses(waiting) & buffer_addresses(batch.spans)
        assert waiting.column("span_id").equals(batch.spans.column("span_id"))
    finally:
        store.close()
