"""A write's trace parts (trace_parts_sql.py says what they are), aggregated in Arrow.

Not in DuckDB's SQL, though the backfill of older files is (trace_parts_sql.BACKFILL, the same
rule; tests/unit/collector/test_trace_parts.py holds the two equal): on a 122,880-span fold
DuckDB's GROUP BY took 20.8 ms and kept 22.5 MiB more resident (its list aggregates' memory
stays with its allocator), Arrow's hash aggregate 13.1 ms and 5.3 MiB, on the writer's
thread of a daemon whose ingest is bounded in CPU and held memory (bench/ingest.py).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

_FLAGS: Final = ("error", "fault", "throttle", "cold_start")


def trace_parts(spans: pa.Table) -> pa.Table:
    """One row per trace of `spans` (and per in-progress span), in trace_parts' column order."""
    trace_ids = spans.column("trace_id")
    no_span = pa.scalar(None, pa.uint64())
    no_service = pa.scalar(None, pa.string())
    services = spans.column("service")
    keyed = pa.table(
        {
            # Arrow's hash aggregate takes the UUIDs' 16 bytes, not the extension type.
            "trace_id": pa.chunked_array([chunk.storage for chunk in trace_ids.chunks], type=pa.binary(16)),
            "in_progress_span_id": pc.if_else(spans.column("in_progress"), spans.column("span_id"), no_span),
            "start_ns": spans.column("start_ns"),
            "end_ns": pc.add(spans.column("start_ns"), spans.column("duration_ns")),
            **{flag: spans.column(flag) for flag in _FLAGS},
            "service": pc.if_else(pc.equal(services, ""), no_service, services),
        }
    )
    grouped = keyed.group_by(["trace_id", "in_progress_span_id"], use_threads=False).aggregate(
        [
            ("start_ns", "min"),
            ("end_ns", "max"),
            ("start_ns", "count"),
            *((flag, "any") for flag in _FLAGS),
            ("service", "distinct", pc.CountOptions(mode="only_valid")),
        ]
    )
    ids = grouped.column("trace_id").combine_chunks()
    return pa.table(
        {
            "trace_id": pa.ExtensionArray.from_storage(pa.uuid(), ids.cast(pa.binary(16))),
            "start_ns": grouped.column("start_ns_min"),
            "end_ns": grouped.column("end_ns_max"),
            "spans": grouped.column("start_ns_count").cast(pa.uint32()),
            **{flag: pc.fill_null(grouped.column(f"{flag}_any"), False) for flag in _FLAGS},
            "services": grouped.column("service_distinct"),
            "in_progress_span_id": grouped.column("in_progress_span_id"),
        }
    )
