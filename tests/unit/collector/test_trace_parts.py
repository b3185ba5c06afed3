"""A write's trace parts (Arrow) and the backfill's (SQL) follow one rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement
from collector.storage.trace_parts_sql import BACKFILL
from tests.contract.test_store_contract import SECOND, T0, batch
from tests.factories import at as span

BACKFILL_SELECT = BACKFILL[BACKFILL.index("SELECT") :]
PARTS = "SELECT * REPLACE (list_sort(services) AS services) FROM {table} ORDER BY trace_id, in_progress_span_id"


def parts(store: DuckDBStore, table: str) -> list[tuple[Any, ...]]:
    return store.reader.rows(Statement(PARTS.format(table=table)))


def test_a_writes_parts_are_what_the_backfill_makes_of_its_spans(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "parts.duckdb"))
    try:
        store.write(
            [
                batch(
                    span(1, 10, None, 0, service="api", duration_s=0.5),
                    span(1, 11, 10, 0.1, service="db", fault=True),
                    span(1, 12, 10, 0.2, service="db", error=True, cold_start=None),
                    span(1, 13, 10, 0.3, service="", throttle=True),  # no service: not among the services
                    span(1, 14, 10, 0.4, service="queue", in_progress=True, source="xray"),  # a part of its own
                    span(1, 15, 10, 0.45, service="queue", in_progress=True, source="xray"),
                    span(2, 20, None, 3, service="", cold_start=True),  # no services at all
                    span(3, 30, None, 5, service="api", cold_start=None),
                )
            ]
        )
        written = parts(store, "trace_parts")
        store.reader.rows(Statement("CREATE TABLE backfilled AS FROM trace_parts LIMIT 0"))
        store.reader.rows(Statement("INSERT INTO backfilled " + BACKFILL_SELECT))
        assert written == parts(store, "backfilled")
        by_trace = {(row[0].int, row[9]): row for row in written}
        assert len(by_trace) == 5  # three traces, two in-progress spans apart
        first = by_trace[(1, None)]
        assert first[1:9] == (T0, T0 + SECOND // 2, 4, True, True, True, False, ["api", "db"])
        assert by_trace[(2, None)][7:9] == (True, [])
        assert by_trace[(3, None)][7] is False  # an unknown cold start is not one
        assert by_trace[(1, 14)][3:9] == (1, False, False, False, False, ["queue"])
    finally:
        store.close()
