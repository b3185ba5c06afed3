"""Test data builders shared by the collector's tests."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from collector.model import LOG_SCHEMA, SpanBatch, SpanBatchBuilder, SpanRow
from collector.storage.protocols import StoredSpan

REQUIRED_DEFAULTS: dict[str, Any] = {
    "service": "svc",
    "name": "op",
    "kind": "INTERNAL",
    "start_ns": 1,
    "duration_ns": 1,
    "status_code": 0,
    "error": False,
    "fault": False,
    "throttle": False,
    "in_progress": False,
    "source": "test",
}


def span_row(**fields: Any) -> SpanRow:
    """A SpanRow from the given fields; required ones get defaults, the rest are NULL."""
    values = {**REQUIRED_DEFAULTS, **fields}
    return SpanRow._make(values.get(name) for name in SpanRow._fields)


SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


STORED_SPAN_DEFAULTS: dict[str, Any] = {
    "trace_id": "0" * 32,
    "span_id": "0" * 16,
    "parent_span_id": None,
    "service": "s",
    "name": "op",
    "kind": "INTERNAL",
    "start_ns": T0,
    "duration_ns": 1_000_000,
    "status_code": 0,
    "status_message": None,
    "http_method": None,
    "http_route": None,
    "http_url": None,
    "http_status": None,
    "http_user_agent": None,
    "error": False,
    "fault": False,
    "throttle": False,
    "cold_start": False,
    "origin": None,
    "target_type": None,
    "target_name": None,
    "function_version": None,
    "user_id": None,
    "in_progress": False,
    "source": "otlp",
    "attributes": {},
    "events": [],
    "resource": {},
    "annotations": {},
    "links": (),
}


def stored_span(**fields: Any) -> StoredSpan:
    """A span as a store reads it back, with plain defaults for every field not given."""
    return StoredSpan(**{**STORED_SPAN_DEFAULTS, **fields})


def trace_key(n: int) -> bytes:
    return n.to_bytes(16, "big")


def at(
    trace: int, span_id: int, parent: int | None, start_s: float, duration_s: float = 0.01, **fields: Any
) -> SpanRow:
    """A span of trace `trace` starting start_s after T0 (ids are small ints for readability)."""
    row = {
        "trace_id": trace_key(trace),
        "span_id": span_id,
        "parent_span_id": parent,
        "name": f"op{span_id}",
        "kind": "SERVER" if parent is None else "INTERNAL",
        "start_ns": T0 + int(start_s * SECOND),
        "duration_ns": int(duration_s * SECOND),
    }
    return span_row(**{**row, **fields})


def logs_batch(*records: tuple[int, int | None, float, str]) -> SpanBatch:
    """Log records (trace, span id or None, seconds after T0, body) of service "s", as one batch."""
    builder = SpanBatchBuilder()
    columns: dict[str, list[Any]] = {name: [] for name in LOG_SCHEMA.names}
    for trace, span_id, at_s, body in records:
        row = (T0 + int(at_s * SECOND), trace_key(trace), span_id, "s", 9, None, body, None)
        for name, value in zip(LOG_SCHEMA.names, row, strict=True):
            columns[name].append(value)
    return replace_logs(builder.build(), pa.Table.from_pydict(columns, schema=LOG_SCHEMA))


def replace_logs(batch: SpanBatch, logs: pa.Table) -> SpanBatch:
    return SpanBatch(batch.spans, batch.annotations, batch.links, logs=logs)


def spans_batch(
    *rows: SpanRow,
    annotations: tuple[tuple[int, str, object], ...] = (),
    links: tuple[tuple[int, int, int], ...] = (),
) -> SpanBatch:
    """A batch of rows; annotations are (span_id, key, value), links (span_id, linked trace, linked span)."""
    builder = SpanBatchBuilder()
    by_span = {row.span_id: row for row in rows}
    for row in rows:
        builder.add_span(row)
    for span_id, key, value in annotations:
        row = by_span[span_id]
        builder.add_annotation(row.trace_id, span_id, row.start_ns, key, value)
    for span_id, linked_trace, linked_span in links:
        row = by_span[span_id]
        builder.add_link(row.trace_id, span_id, row.start_ns, trace_key(linked_trace), linked_span)
    return builder.build()


def otlp_value(v: Any) -> AnyValue:
    """An OTLP AnyValue of a Python value (None: the empty value)."""
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[otlp_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=otlp_value(x)) for k, x in v.items()]))
    return AnyValue()
