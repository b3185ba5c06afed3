"""The span row: what every receiver normalizes into, once, and what the store keeps.

Rows are built column by column (a :class:`SpanBatchBuilder` appends Python values to lists)
and handed to storage as one Arrow table per batch, the fastest way into DuckDB measured here
(``bench/key_types.py``: trace ids as UUIDs straight from Arrow's UUID type insert and join
fastest). Annotations and links get tables of their own so queries never parse JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa

SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("service", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_ns", pa.int64()),
        ("duration_ns", pa.int64()),
        ("status_code", pa.uint8()),
        ("status_message", pa.string()),
        ("http_method", pa.string()),
        ("http_route", pa.string()),
        ("http_url", pa.string()),
        ("http_status", pa.uint16()),
        ("http_user_agent", pa.string()),
        ("error", pa.bool_()),
        ("fault", pa.bool_()),
        ("throttle", pa.bool_()),
        ("cold_start", pa.bool_()),
        ("origin", pa.string()),
        ("target_type", pa.string()),
        ("target_name", pa.string()),
        ("function_version", pa.string()),
        ("user_id", pa.string()),
        ("in_progress", pa.bool_()),
        ("source", pa.string()),
        ("attributes", pa.string()),
        ("events", pa.string()),
        ("resource", pa.string()),
    ]
)
SPAN_COLUMNS = tuple(SPAN_SCHEMA.names)

ANNOTATION_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("start_ns", pa.int64()),
        ("key", pa.string()),
        ("str_value", pa.string()),
        ("num_value", pa.float64()),
        ("bool_value", pa.bool_()),
    ]
)

LINK_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("start_ns", pa.int64()),
        ("linked_trace_id", pa.uuid()),
        ("linked_span_id", pa.uint64()),
    ]
)


@dataclass
class SpanBatch:
    """Normalized spans, annotations and links, ready for one insert."""

    spans: pa.Table
    annotations: pa.Table
    links: pa.Table
    rejected: int = 0
    rejection_reason: str = ""

    @property
    def span_count(self) -> int:
        return int(self.spans.num_rows)


class SpanRow(NamedTuple):
    """One span as stored; field order is SPAN_SCHEMA's."""

    trace_id: bytes
    span_id: int
    parent_span_id: int | None
    service: str
    name: str
    kind: str
    start_ns: int
    duration_ns: int
    status_code: int
    status_message: str | None
    http_method: str | None
    http_route: str | None
    http_url: str | None
    http_status: int | None
    http_user_agent: str | None
    error: bool
    fault: bool
    throttle: bool
    cold_start: bool | None
    origin: str | None
    target_type: str | None
    target_name: str | None
    function_version: str | None
    user_id: str | None
    in_progress: bool
    source: str
    attributes: str | None
    events: str | None
    resource: str | None


assert SpanRow._fields == SPAN_COLUMNS, "SpanRow must follow SPAN_SCHEMA"


@dataclass
class SpanBatchBuilder:
    """Accumulates rows; ``build()`` transposes them into Arrow tables (one C-level pass)."""

    rows: list[SpanRow] = field(default_factory=list)
    annotation_rows: list[tuple[bytes, int, int, str, str | None, float | None, bool | None]] = field(
        default_factory=list
    )
    link_rows: list[tuple[bytes, int, int, bytes, int]] = field(default_factory=list)
    rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)

    def add_span(self, row: SpanRow) -> None:
        self.rows.append(row)

    def add_annotation(self, trace_id: bytes, span_id: int, start_ns: int, key: str, value: object) -> None:
        if isinstance(value, bool):
            self.annotation_rows.append((trace_id, span_id, start_ns, key, None, None, value))
        elif isinstance(value, (int, float)):
            self.annotation_rows.append((trace_id, span_id, start_ns, key, None, float(value), None))
        elif isinstance(value, str):
            self.annotation_rows.append((trace_id, span_id, start_ns, key, value, None, None))

    def add_link(self, trace_id: bytes, span_id: int, start_ns: int, linked_trace: bytes, linked_span: int) -> None:
        self.link_rows.append((trace_id, span_id, start_ns, linked_trace, linked_span))

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if reason and len(self.rejection_reasons) < 5 and reason not in self.rejection_reasons:
            self.rejection_reasons.append(reason)

    @property
    def span_count(self) -> int:
        return len(self.rows)

    def build(self) -> SpanBatch:
        return SpanBatch(
            spans=rows_table(self.rows, SPAN_SCHEMA),
            annotations=rows_table(self.annotation_rows, ANNOTATION_SCHEMA),
            links=rows_table(self.link_rows, LINK_SCHEMA),
            rejected=self.rejected,
            rejection_reason="; ".join(self.rejection_reasons),
        )


def rows_table(rows: list[Any], schema: pa.Schema) -> pa.Table:
    """An Arrow table from row tuples in `schema`'s column order (one C-level transpose)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema.names]
    return arrow_table(columns, schema)


def arrow_table(columns: list[Any], schema: pa.Schema) -> pa.Table:
    """An Arrow table from one sequence of Python values per column of `schema`."""
    return pa.table([pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)], schema=schema)
