"""OTLP/protobuf ``ExportTraceServiceRequest`` bodies into span rows.

Two implementations give the same rows, both from derive.py's rules. The C extension
``_otlpfast`` (built at install when a compiler is present) reads the wire format and asks
derive.py what a span means once per distinct signature of its facts, applying the answer to
every span that shares it; it is the fast path. The Python path parses with
opentelemetry-proto's generated message on protobuf's upb runtime and walks it through otel.py;
it serves where the extension is missing, for the few requests the extension hands back
(``aws.xray.annotations``), and as the reference the equivalence tests and the differential
fuzz hold the extension to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.model import (
    ANNOTATION_SCHEMA,
    LINK_SCHEMA,
    SPAN_SCHEMA,
    SpanBatch,
    SpanBatchBuilder,
)
from collector.normalize.otel import add_otel_span, resource_info
from spanlang.derive import (
    ANNOTATION_LIST_KEY,
    FACT_KEYS,
    TEXT_READ_KEYS,
    resource_meaning,
    span_meaning_and_weight,
)
from tracer import semconv

try:
    from collector.normalize import _otlpfast as _otlpfast  # tests reach it here, as decoding does
except ImportError:  # not compiled here: the Python path does the same work, slower
    _otlpfast = None  # type: ignore[assignment]

FAST_DECODER_AVAILABLE = _otlpfast is not None
if _otlpfast is not None:  # the extension decodes; what a span means it asks derive.py
    _otlpfast.configure(
        FACT_KEYS,
        TEXT_READ_KEYS,
        semconv.ANNOTATION_PREFIX,
        ANNOTATION_LIST_KEY,
        span_meaning_and_weight,
        resource_meaning,
    )


class UndecodableBody(ValueError):
    """The body is not an OTLP message of the declared encoding."""


NOT_A_REQUEST = "body is not a valid OTLP protobuf ExportTraceServiceRequest"


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
# An attribute's value is depth 1, each array or key/value list around a value one more; the C
# decoder refuses the same requests (its recursion is bounded by it).
MAX_VALUE_DEPTH = 32
TOO_DEEP = f"{NOT_A_REQUEST}: attribute values nested too deep"


def any_value(value: AnyValue, depth: int = 1) -> Any:
    if depth > MAX_VALUE_DEPTH:
        raise UndecodableBody(TOO_DEEP)
    which = value.WhichOneof("value")
    if which in _SCALARS:
        return getattr(value, which)
    if which == "array_value":
        return [any_value(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def check_depth(pairs: Any) -> None:
    """Attributes nothing stores (a link's, a scope's) are held to the same depth limit."""
    for kv in pairs:
        any_value(kv.value)


def decode_protobuf(body: bytes) -> SpanBatch:
    """Normalize a protobuf request; raises UndecodableBody for bytes that are not one."""
    if _otlpfast is not None:
        try:
            decoded = _otlpfast.decode(body)
        except ValueError as exc:
            raise UndecodableBody(f"{NOT_A_REQUEST}: {exc}") from exc
        if decoded is not None:
            spans, annotations, links, rejected, reasons, held_bytes = decoded
            return SpanBatch(
                spans=imported_table(spans, SPAN_SCHEMA),
                annotations=imported_table(annotations, ANNOTATION_SCHEMA),
                links=imported_table(links, LINK_SCHEMA),
                rejected=rejected,
                rejection_reason="; ".join(reasons),
                known_bytes=held_bytes,
            )
    return decode_protobuf_python(body)


@dataclass(frozen=True)
class CDecoderArray:
    """The C decoder's struct array of a table and its schema, as the Arrow PyCapsule interface
    presents them to pyarrow (which takes the buffers over, copying nothing)."""

    capsule: object
    schema: pa.Schema

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self.schema.__arrow_c_schema__(), self.capsule


def imported_table(array_capsule: object, schema: pa.Schema) -> pa.Table:
    """A table from the C decoder's struct array in `array_capsule`."""
    return pa.Table.from_batches([pa.record_batch(CDecoderArray(array_capsule, schema))], schema=schema)


def decode_protobuf_python(body: bytes) -> SpanBatch:
    """The pure-Python path of decode_protobuf."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise UndecodableBody(f"{NOT_A_REQUEST}: {exc}") from exc
    builder = SpanBatchBuilder()
    for resource_spans in request.resource_spans:
        resource = resource_info(attributes_of(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            check_depth(scope_spans.scope.attributes)
            for span in scope_spans.spans:
                for link in span.links:
                    check_depth(link.attributes)
                add_otel_span(
                    builder,
                    resource,
                    trace_id=span.trace_id,
                    span_id=span.span_id,
                    parent_span_id=span.parent_span_id,
                    name=span.name,
                    kind=span.kind,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status_code=span.status.code,
                    status_message=span.status.message,
                    attributes=attributes_of(span.attributes),
                    events=[(e.name, e.time_unix_nano, attributes_of(e.attributes)) for e in span.events],
                    links=[(link.trace_id, link.span_id) for link in span.links],
                )
    return builder.build()
