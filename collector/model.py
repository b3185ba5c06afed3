"""The span row: what every receiver normalizes into, once, and what the store keeps.

Rows are built column by column (a :class:`SpanBatchBuilder` appends Python values to lists)
and handed to storage as one Arrow table per batch, the fastest way into DuckDB measured here
(``bench/key_types.py``: trace ids as UUIDs straight from Arrow's UUID type insert and join
fastest). Annotations and links get tables of their own so queries never parse JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import pyarrow as pa

SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("service", pa.dictionary(pa.int32(), pa.string())),  # shared by a resource's spans, as below
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
        # Every span of a ResourceSpans shares its resource: held once per request (dictionary-
        # encoded), so a large resource over many small spans costs its size once, not per span.
        ("resource", pa.dictionary(pa.int32(), pa.string())),
        # How many requests the span stands for in the map's estimate (derive.sampling_weight_of):
        # NULL counts once. Last, after `resource` (whose key takes its place in storage), as
        # the column was added to stored tables.
        ("sampling_weight", pa.float64()),
    ]
)
SPAN_COLUMNS = tuple(SPAN_SCHEMA.names)
# The span row as stored and read back: shared texts as plain strings.
STORED_SPAN_SCHEMA = pa.schema(
    [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in SPAN_SCHEMA]
)

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

# A log record (OTLP logs, or a Lambda function's JSON log line the local cloud forwards as one):
# when, the span it was written in (when known), what it said. Bodies and attributes are JSON
# text, capped as spans' are.
LOG_SCHEMA = pa.schema(
    [
        ("time_ns", pa.int64()),
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("service", pa.string()),
        ("severity_number", pa.uint8()),
        ("severity_text", pa.string()),
        ("body", pa.string()),
        ("attributes", pa.string()),
    ]
)

NO_LOGS = LOG_SCHEMA.empty_table()  # a span batch's: one table, never changed (Arrow tables are immutable)


@dataclass
class SpanBatch:
    """Normalized spans, annotations and links, ready for one insert."""

    spans: pa.Table
    annotations: pa.Table
    links: pa.Table
    rejected: int = 0
    rejection_reason: str = ""
    known_bytes: int | None = None  # the decoder's count of decoded_bytes, when it kept one
    logs: pa.Table = field(default_factory=lambda: NO_LOGS)  # an OTLP logs request's records

    @property
    def span_count(self) -> int:
        return int(self.spans.num_rows)

    @property
    def row_count(self) -> int:
        """Spans and log records: what the pipeline holds and stores."""
        return int(self.spans.num_rows + self.logs.num_rows)

    @cached_property
    def decoded_bytes(self) -> int:
        """What the batch holds in memory (Arrow buffers), for the bounds that keep memory in check."""
        if self.known_bytes is not None:
            return self.known_bytes
        # get_total_buffer_size: ~45 us a 512-span request; nbytes, which sizes slices exactly, ~130 us.
        tables = (self.spans, self.annotations, self.links, self.logs)
        return int(sum(table.get_total_buffer_size() for table in tables))


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
    sampling_weight: float | None


assert SpanRow._fields == SPAN_COLUMNS, "SpanRow must follow SPAN_SCHEMA"


# Rows a builder holds as Python tuples before it turns them into Arrow: a row costs ~10x its
# Arrow size as objects, so a request of many small spans is converted a chunk at a time.
ROWS_PER_CHUNK = 8192


@dataclass
class SpanBatchBuilder:
    """Accumulates rows; ``build()`` transposes them into Arrow tables (one C-level pass a chunk)."""

    rows: list[SpanRow] = field(default_factory=list)
    annotation_rows: list[tuple[bytes, int, int, str, str | None, float | None, bool | None]] = field(
        default_factory=list
    )
    link_rows: list[tuple[bytes, int, int, bytes, int]] = field(default_factory=list)
    rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)
    _chunks: list[pa.Table] = field(default_factory=list)
    _chunked_rows: int = 0

    def add_span(self, row: SpanRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= ROWS_PER_CHUNK:
            self._convert_rows()

    def _convert_rows(self) -> None:
        self._chunks.append(spans_table(self.rows))
        self._chunked_rows += len(self.rows)
        self.rows = []

    def extend(self, other: SpanBatchBuilder) -> None:
        """Take every row of `other` (a builder of a few rows: one datagram's)."""
        for row in other.rows:
            self.add_span(row)
        self._chunks.extend(other._chunks)
        self._chunked_rows += other._chunked_rows
        self.annotation_rows.extend(other.annotation_rows)
        self.link_rows.extend(other.link_rows)

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
        return self._chunked_rows + len(self.rows)

    def build(self) -> SpanBatch:
        chunks = [*self._chunks, spans_table(self.rows)] if self.rows or not self._chunks else self._chunks
        return SpanBatch(
            spans=chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks),
            annotations=rows_table(self.annotation_rows, ANNOTATION_SCHEMA),
            links=rows_table(self.link_rows, LINK_SCHEMA),
            rejected=self.rejected,
            rejection_reason="; ".join(self.rejection_reasons),
        )


def spans_table(rows: list[SpanRow]) -> pa.Table:
    """SPAN_SCHEMA's table of `rows`; their services and resources are dictionary-encoded by
    identity (the rows of one resource share one str of each), so no text is hashed or copied
    per row."""
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in SPAN_SCHEMA.names]
    arrays = []
    for column, f in zip(columns, SPAN_SCHEMA, strict=True):
        arrays.append(shared_texts(column) if pa.types.is_dictionary(f.type) else pa.array(column, type=f.type))
    return pa.table(arrays, schema=SPAN_SCHEMA)


def shared_texts(texts: Any) -> pa.DictionaryArray:
    """A dictionary array of `texts`, one entry per distinct str object (None: null)."""
    index_of: dict[int, int] = {}
    values: list[str] = []
    indices: list[int | None] = []
    for text in texts:
        if text is None:
            indices.append(None)
            continue
        at = index_of.get(id(text))
        if at is None:
            at = index_of[id(text)] = len(values)
            values.append(text)
        indices.append(at)
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(values, pa.string()))


def rows_table(rows: list[Any], schema: pa.Schema) -> pa.Table:
    """An Arrow table from row tuples in `schema`'s column order (one C-level transpose)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema.names]
    return arrow_table(columns, schema)


def arrow_table(columns: list[Any], schema: pa.Schema) -> pa.Table:
    """An Arrow table from one sequence of Python values per column of `schema`."""
    return pa.table([pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)], schema=schema)
