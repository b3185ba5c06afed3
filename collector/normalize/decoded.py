"""What every decoder hands to derive.py: spans as they were sent, and the facts derive reads.

A decoder (the C extension for OTLP protobuf, otel.py for the Python paths, xray.py for X-Ray
segments) only decodes: ids, times, name, kind, status, the attributes as JSON, and, for the
few attribute keys X-Ray's notions are derived from (:data:`FACT_KEYS`) and every
``fluoro.annotation.*`` key, a *fact*: the value's type, its text, integer, double and
truthiness, one row of a sparse table per attribute present. No decoder decides what a span
means; derive.py does, once, for all of them.

The C decoder builds the same tables (``_otlpfast.fact_keys()`` must equal FACT_KEYS, checked at
import); :class:`DecodedBuilder` builds them from Python values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import pyarrow as pa

from collector.model import LINK_SCHEMA, ROWS_PER_CHUNK, arrow_table, rows_table

FACT_KEYS = (
    "http.response.status_code", "http.status_code", "http.request.method", "http.method", "http.route",
    "url.full", "http.url", "url.path", "user_agent.original", "http.user_agent", "faas.version",
    "enduser.id", "fluoro.origin", "fluoro.target.type", "fluoro.target.name", "rpc.system", "rpc.service",
    "aws.s3.bucket", "aws.sqs.queue_url", "messaging.url", "aws.kinesis.stream_name",
    "aws.lambda.function_name", "faas.invoked_name", "messaging.destination.name",
    "aws.dynamodb.table_names", "db.system", "db.namespace", "db.name", "messaging.system", "peer.service",
    "server.address", "net.peer.name", "server.port", "net.peer.port", "faas.trigger", "faas.invocation_id",
    "fluoro.error", "fluoro.fault", "fluoro.throttle", "faas.coldstart", "service.name", "service.version",
)  # fmt: skip
FACT_KEY_INDEX = {key: index for index, key in enumerate(FACT_KEYS)}
ANNOTATION_FACT = 255  # the key of an annotation's fact; its name is the attribute key's suffix
ANNOTATION_PREFIX = "fluoro.annotation."
XRAY_ANNOTATION_LIST = "aws.xray.annotations"  # ADOT's attribute naming other attributes to index


class ValueType(IntEnum):
    """An attribute value's type, as OTLP's AnyValue has them (NONE: the empty value)."""

    NONE = 0
    STR = 1
    BOOL = 2
    INT = 3
    DOUBLE = 4
    ARRAY = 5
    KVLIST = 6


# One fact: the span's row in its batch (the resource's, in the resource facts), the key (an
# index into FACT_KEYS, or ANNOTATION_FACT), the value's type, its text (a string's, or an
# array's first element when that is a string), its integer (an int's; a bool's 0 or 1), its
# double, its truthiness as Python sees it, and an annotation's name.
FACT_SCHEMA = pa.schema(
    [
        ("row", pa.int32()),
        ("key", pa.uint8()),
        ("type", pa.uint8()),
        ("text", pa.string()),
        ("number", pa.int64()),
        ("real", pa.float64()),
        ("truthy", pa.bool_()),
        ("name", pa.string()),
    ]
)

DECODED_SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("resource_index", pa.int32()),  # its resource's row in `resources`; null: none (X-Ray)
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_ns", pa.int64()),
        ("duration_ns", pa.int64()),
        ("status_code", pa.uint8()),
        ("status_message", pa.string()),
        ("has_exception", pa.bool_()),  # an event named "exception"
        ("in_progress", pa.bool_()),
        ("source", pa.string()),
        ("attributes", pa.string()),
        ("events", pa.string()),
    ]
)
# A resource's attributes as JSON; null for a resource that is not stored (an X-Ray segment's).
RESOURCE_SCHEMA = pa.schema([("json", pa.string())])


@dataclass(frozen=True)
class DecodedBatch:
    """A decoder's output, before derive.py gives the spans their meaning."""

    spans: pa.Table
    facts: pa.Table
    resources: pa.Table
    resource_facts: pa.Table
    links: pa.Table
    rejected: int = 0
    rejection_reason: str = ""
    known_bytes: int | None = None  # what the decoder's tables hold, when it counted it


FactRow = tuple[int, int, int, str | None, int | None, float | None, bool, str | None]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SCALARS = (str, int, float, bool)  # the values an annotation may hold


def fact_of(row: int, key: int, value: object, name: str | None = None) -> FactRow:
    """The fact of one Python attribute value (as the decoders make them: str, bool, int, float,
    list, dict, None; bytes already as hex text)."""
    if isinstance(value, str):
        return (row, key, ValueType.STR, value, None, None, bool(value), name)
    if isinstance(value, bool):
        return (row, key, ValueType.BOOL, None, int(value), None, value, name)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:  # only a hostile X-Ray document: OTLP's are int64
            return (row, key, ValueType.DOUBLE, None, None, float(value), True, name)
        return (row, key, ValueType.INT, None, value, None, value != 0, name)
    if isinstance(value, float):
        return (row, key, ValueType.DOUBLE, None, None, value, bool(value), name)
    if isinstance(value, (list, tuple)):
        first = value[0] if value and isinstance(value[0], str) else None
        return (row, key, ValueType.ARRAY, first, None, None, bool(value), name)
    if isinstance(value, Mapping):
        return (row, key, ValueType.KVLIST, None, None, None, bool(value), name)
    return (row, key, ValueType.NONE, None, None, None, False, name)


def facts_of(row: int, attributes: Mapping[str, Any]) -> list[FactRow]:
    """The facts of one span's (or resource's) attributes: its fact keys and annotations, the
    latter in attribute order, then those an ``aws.xray.annotations`` list names."""
    found = [fact_of(row, FACT_KEY_INDEX[key], value) for key, value in attributes.items() if key in FACT_KEY_INDEX]
    prefix = len(ANNOTATION_PREFIX)
    names = [key for key in attributes if key.startswith(ANNOTATION_PREFIX) and len(key) > prefix]
    found.extend(fact_of(row, ANNOTATION_FACT, attributes[key], key[prefix:]) for key in names)
    listed = attributes.get(XRAY_ANNOTATION_LIST)
    if isinstance(listed, (list, tuple)):
        seen = {key[prefix:] for key in names if isinstance(attributes[key], SCALARS)}
        for key in listed:
            if isinstance(key, str) and isinstance(attributes.get(key), SCALARS) and key not in seen:
                seen.add(key)
                found.append(fact_of(row, ANNOTATION_FACT, attributes[key], key))
    return found


class DecodedRow(NamedTuple):
    """One span as sent; field order is DECODED_SPAN_SCHEMA's."""

    trace_id: bytes
    span_id: int
    parent_span_id: int | None
    resource_index: int | None
    name: str
    kind: str
    start_ns: int
    duration_ns: int
    status_code: int
    status_message: str | None
    has_exception: bool
    in_progress: bool
    source: str
    attributes: str | None
    events: str | None


assert DecodedRow._fields == tuple(DECODED_SPAN_SCHEMA.names), "DecodedRow must follow DECODED_SPAN_SCHEMA"


@dataclass
class DecodedBuilder:
    """Accumulates decoded spans, their facts, resources and links from Python values."""

    source: str
    rows: list[DecodedRow] = field(default_factory=list)
    fact_rows: list[FactRow] = field(default_factory=list)
    resource_rows: list[tuple[str | None]] = field(default_factory=list)
    resource_fact_rows: list[FactRow] = field(default_factory=list)
    link_rows: list[tuple[bytes, int, int, bytes, int]] = field(default_factory=list)
    rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)
    _chunks: list[pa.Table] = field(default_factory=list)
    _chunked_rows: int = 0

    @property
    def span_count(self) -> int:
        return self._chunked_rows + len(self.rows)

    def add_resource(self, json: str | None, attributes: Mapping[str, Any]) -> int:
        """A resource (its JSON, null if not stored) and its facts; returns its index."""
        index = len(self.resource_rows)
        self.resource_rows.append((json,))
        self.resource_fact_rows.extend(facts_of(index, attributes))
        return index

    def add_span(self, row: DecodedRow, attributes: Mapping[str, Any]) -> int:
        """A span and the facts of its attributes; returns its row."""
        at = self.span_count
        self.rows.append(row)
        if attributes:
            self.fact_rows.extend(facts_of(at, attributes))
        if len(self.rows) >= ROWS_PER_CHUNK:  # ~10x its Arrow size as objects: convert a chunk at a time
            self._chunks.append(rows_table(self.rows, DECODED_SPAN_SCHEMA))
            self._chunked_rows += len(self.rows)
            self.rows = []
        return at

    def add_link(self, trace_id: bytes, span_id: int, start_ns: int, linked_trace: bytes, linked_span: int) -> None:
        self.link_rows.append((trace_id, span_id, start_ns, linked_trace, linked_span))

    def extend(self, other: DecodedBuilder) -> None:
        """Take everything of `other` (a builder of a few spans: one X-Ray datagram's)."""
        assert not other._chunks, "extend takes a small builder's rows"
        spans, resources = self.span_count, len(self.resource_rows)
        for row in other.rows:
            resource = None if row.resource_index is None else row.resource_index + resources
            self.add_span(row._replace(resource_index=resource), {})
        self.fact_rows.extend((f[0] + spans, *f[1:]) for f in other.fact_rows)
        self.resource_rows.extend(other.resource_rows)
        self.resource_fact_rows.extend((f[0] + resources, *f[1:]) for f in other.resource_fact_rows)
        self.link_rows.extend(other.link_rows)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if reason and len(self.rejection_reasons) < 5 and reason not in self.rejection_reasons:
            self.rejection_reasons.append(reason)

    def build(self) -> DecodedBatch:
        chunks = self._chunks
        if self.rows or not chunks:
            chunks = [*chunks, rows_table(self.rows, DECODED_SPAN_SCHEMA)]
        return DecodedBatch(
            spans=chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks),
            facts=facts_table(self.fact_rows),
            resources=rows_table(self.resource_rows, RESOURCE_SCHEMA),
            resource_facts=facts_table(self.resource_fact_rows),
            links=rows_table(self.link_rows, LINK_SCHEMA),
            rejected=self.rejected,
            rejection_reason="; ".join(self.rejection_reasons),
        )


def facts_table(rows: list[FactRow]) -> pa.Table:
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in FACT_SCHEMA.names]
    return arrow_table(columns, FACT_SCHEMA)
