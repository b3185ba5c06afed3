"""The recorded demo run (tests/data/demo_run: 2,567 spans of 343 traces from the three
architectures, OTLP and X-Ray, annotations and links, exported from `make demo`'s database),
for tests that need the demo's real map without running the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collector.model import ANNOTATION_SCHEMA, LINK_SCHEMA, SPAN_SCHEMA, SpanBatch
from collector.storage.duckdb_store import DuckDBStore

RECORDED: Final = Path(__file__).resolve().parent / "data" / "demo_run"
MINUTE_NS: Final = 60 * 10**9
REQUEST_SPANS: Final = 128


def recorded() -> tuple[pa.Table, pa.Table, pa.Table]:
    spans = pq.read_table(RECORDED / "spans.parquet")
    if "sampling_weight" not in spans.column_names:  # recorded before spans carried one: each counts once
        spans = spans.append_column("sampling_weight", pa.nulls(spans.num_rows, pa.float64()))
    spans = spans.cast(SPAN_SCHEMA)
    annotations = pq.read_table(RECORDED / "annotations.parquet").cast(ANNOTATION_SCHEMA)
    links = pq.read_table(RECORDED / "links.parquet").cast(LINK_SCHEMA)
    return spans, annotations, links


def shifted(table: pa.Table, by_ns: int) -> pa.Table:
    """`table` with its start_ns moved by `by_ns`."""
    index = table.schema.get_field_index("start_ns")
    return table.set_column(index, "start_ns", pc.add(table.column("start_ns"), pa.scalar(by_ns, pa.int64())))


def write_recorded_run(path: Path, last_start_ns: int) -> pa.Table:
    """The recorded run in a new database file at `path`, moved so its last span starts at
    `last_start_ns`, linked and rolled up as a collector leaves it; returns its spans."""
    spans, annotations, links = recorded()
    by_ns = last_start_ns - int(pc.max(spans.column("start_ns")).as_py())
    spans, annotations, links = (shifted(t, by_ns) for t in (spans, annotations, links))
    store = DuckDBStore(str(path))
    try:
        store.write([SpanBatch(spans, annotations, links)])
        linked_at_ns = last_start_ns + 10 * MINUTE_NS
        store.link_new_spans(linked_at_ns)
        store.expire_pending_calls(linked_at_ns + 1)
    finally:
        store.close()
    return spans
