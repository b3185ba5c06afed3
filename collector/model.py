"""The span row: what every receiver normalizes into, once, and what the store keeps.

Rows are built column by column (a :class:`SpanBatchBuilder` appends Python values to lists)
and handed to storage as one Arrow table per batch, the fastest way into DuckDB measured here
(``bench/key_types.py``: trace ids as UUIDs straight from Arrow's UUID type insert and join
fastest). Annotations and links get tables of their own so queries never parse JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class SpanBatchBuilder:
    """Accumulates rows column-wise; ``build()`` makes the Arrow tables."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in SPAN_COLUMNS})
    annotation_columns: dict[str, list[Any]] = field(
        default_factory=lambda: {name: [] for name in ANNOTATION_SCHEMA.names}
    )
    link_columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in LINK_SCHEMA.names})
    rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)

    def add_span(self, row: dict[str, Any]) -> None:
        """Append one row; missing columns are NULL."""
        for name, values in self.columns.items():
            values.append(row.get(name))

    def add_annotation(self, trace_id: bytes, span_id: int, start_ns: int, key: str, value: object) -> None:
        cols = self.annotation_columns
        cols["trace_id"].append(trace_id)
        cols["span_id"].append(span_id)
        cols["start_ns"].append(start_ns)
        cols["key"].append(key)
        is_bool = isinstance(value, bool)
        is_number = isinstance(value, (int, float)) and not is_bool
        cols["str_value"].append(value if isinstance(value, str) else None)
        cols["num_value"].append(float(value) if is_number else None)  # type: ignore[arg-type]
        cols["bool_value"].append(value if is_bool else None)

    def add_link(self, trace_id: bytes, span_id: int, start_ns: int, linked_trace: bytes, linked_span: int) -> None:
        cols = self.link_columns
        cols["trace_id"].append(trace_id)
        cols["span_id"].append(span_id)
        cols["start_ns"].append(start_ns)
        cols["linked_trace_id"].append(linked_trace)
        cols["linked_span_id"].append(linked_span)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if reason and len(self.rejection_reasons) < 5 and reason not in self.rejection_reasons:
            self.rejection_reasons.append(reason)

    @property
    def span_count(self) -> int:
        return len(self.columns["span_id"])

    def build(self) -> SpanBatch:
        return SpanBatch(
            spans=pa.table(self.columns, schema=SPAN_SCHEMA),
            annotations=pa.table(self.annotation_columns, schema=ANNOTATION_SCHEMA),
            links=pa.table(self.link_columns, schema=LINK_SCHEMA),
            rejected=self.rejected,
            rejection_reason="; ".join(self.rejection_reasons),
        )
