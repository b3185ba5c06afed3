"""OTLP/protobuf encoding of spans, written by hand for speed.

Why by hand: the stock exporter builds a protobuf object per span, per attribute and per
value in Python (~24 µs a span here), which is most of what tracing costs a serverless
handler. The wire format of ``ExportTraceServiceRequest`` is small and fixed, so this module
writes its bytes directly (several times cheaper). The output parses to the same message as the stock
encoder's (a unit test compares them field by field); ``bench/tracer_overhead.py`` shows the
difference. Field numbers are those of opentelemetry-proto's trace.proto and common.proto.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE, Link, SpanContext, SpanKind, Status, StatusCode, TraceState

from tracer import semconv
from tracer.lightspan import UNSET_STATUS
from tracer.sampling_weight import weight_of

_logger = logging.getLogger(__name__)
WARN_INTERVAL_S = 60.0
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack

# Span flags: bit 8 says "is_remote is known", bit 9 is the parent's is_remote.
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200
_FLAGS_LOCAL = b"\x85\x01" + _pack_fixed32(_FLAGS_HAS_IS_REMOTE)
_FLAGS_REMOTE = b"\x85\x01" + _pack_fixed32(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
_LINK_FLAGS_LOCAL = b"\x35" + _pack_fixed32(_FLAGS_HAS_IS_REMOTE)
_LINK_FLAGS_REMOTE = b"\x35" + _pack_fixed32(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
_SMALL_VARINTS = [bytes([n]) for n in range(128)]


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values take ten bytes (two's complement).
    OverflowError outside int64: the bytes would be a varint no decoder takes."""
    if 0 <= value < 128:
        return _SMALL_VARINTS[value]
    if value < 0:
        if value < -0x8000000000000000:  # literals, not the names: a global lookup a call costs more
            raise OverflowError(f"{value} is outside int64")
        value += 1 << 64
    elif value > 0x7FFFFFFFFFFFFFFF:
        raise OverflowError(f"{value} is outside int64")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body for an attribute value."""
    kind = type(value)
    if kind is str:
        data: bytes = value.encode("utf-8", "replace")
        return b"\x0a" + varint(len(data)) + data
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + varint(value)
    if kind is float:
        return b"\x21" + _pack_double(value)
    if isinstance(value, (bytes, bytearray)):
        return _len_field(b"\x3a", bytes(value))
    if isinstance(value, (list, tuple)):
        items = b"".join(_len_field(b"\x0a", any_value(v)) for v in value)
        return _len_field(b"\x2a", items)
    if isinstance(value, Mapping):
        return _len_field(b"\x32", attributes_body(value, b"\x0a"))
    # Subclasses of the primitives (IntEnum, str enums) are sent as their base value.
    if isinstance(value, bool):
        return any_value(bool(value))
    if isinstance(value, int):
        return any_value(int(value))
    if isinstance(value, float):
        return any_value(float(value))
    if isinstance(value, str):
        data = value.encode("utf-8", "replace")  # the value itself, not an enum's str()
        return b"\x0a" + varint(len(data)) + data
    data = str(value).encode("utf-8", "replace")
    return b"\x0a" + varint(len(data)) + data


def attributes_body(attributes: Mapping[str, Any] | None, tag: bytes) -> bytes:
    """Repeated ``KeyValue`` fields with field tag `tag`."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        key_bytes = key.encode("utf-8", "replace")
        value_bytes = any_value(value)
        body = b"\x0a" + varint(len(key_bytes)) + key_bytes + b"\x12" + varint(len(value_bytes)) + value_bytes
        parts.append(tag + varint(len(body)) + body)
    return b"".join(parts)


def _trace_state(context: SpanContext) -> str:
    state = context.trace_state
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


def _event(event: Any) -> bytes:
    name: bytes = event.name.encode("utf-8", "replace")
    body = (
        b"\x09"
        + _pack_fixed64(event.timestamp)
        + b"\x12"
        + varint(len(name))
        + name
        + attributes_body(event.attributes, b"\x1a")
    )
    dropped: int = getattr(event, "dropped_attributes", 0)
    if dropped:
        body += b"\x20" + varint(dropped)
    return b"\x5a" + varint(len(body)) + body


def _link(link: Link) -> bytes:
    context = link.context
    body = b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big")
    state = _trace_state(context)
    if state:
        body += _len_field(b"\x1a", state.encode())
    body += attributes_body(link.attributes, b"\x22")
    dropped = getattr(link, "dropped_attributes", 0)
    if dropped:
        body += b"\x28" + varint(dropped)
    body += _LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL
    return b"\x6a" + varint(len(body)) + body


# OTLP kinds count from 1. Keyed by the member's id: hashing an Enum member runs Python code.
_KIND_FIELDS = {id(kind): b"\x30" + bytes([kind.value + 1]) for kind in SpanKind}
_pack_times = struct.Struct("<BQBQ").pack  # start (field 7) and end (field 8), both fixed64
_EMPTY_STATUS = b"\x7a\x00"
_MAX_CACHED_NAMES = 4096


def _status_field(status: Status) -> bytes:
    if status is UNSET_STATUS or (status.status_code is StatusCode.UNSET and not status.description):
        return _EMPTY_STATUS
    body = b""
    if status.description:
        body += _len_field(b"\x12", status.description.encode("utf-8", "replace"))
    if status.status_code.value:
        body += b"\x18" + varint(status.status_code.value)
    return b"\x7a" + varint(len(body)) + body


def _name_field(name: str) -> bytes:
    data = name.encode("utf-8", "replace")
    return b"\x2a" + varint(len(data)) + data


# Every sampled span says why it was exported (semconv.SAMPLING): tail-keep sets its reason on
# the spans it keeps; any other sampled span was kept by head sampling, which costs no attribute
# on the span, only these constant bytes here.
_HEAD_SAMPLING = attributes_body({semconv.SAMPLING: "head"}, b"\x4a")


@lru_cache(maxsize=64)
def _weight_field(trace_state: str) -> bytes:
    """The sampling weight attribute a head-sampled span's trace state implies (b"" for none or 1)."""
    weight = weight_of(TraceState.from_header([trace_state]))
    if weight is None or weight == 1.0:
        return b""
    return attributes_body({semconv.SAMPLING_WEIGHT: weight}, b"\x4a")


def encode_span(span: ReadableSpan, names: dict[str, bytes] | None = None) -> bytes:
    """One ``Span`` message body (without its field tag); `names` caches encoded span names.

    Reads ReadableSpan's fields directly: its properties copy (MappingProxy, tuples) on
    every access, which is most of the cost at this size.
    """
    context = span._context
    assert context is not None
    parent = span._parent
    trace_id, span_id, _, flags, trace_state = context[:5]  # SpanContext is a tuple; its properties cost
    parts = [b"\x0a\x10" + trace_id.to_bytes(16, "big") + b"\x12\x08" + span_id.to_bytes(8, "big")]
    state = "" if trace_state is DEFAULT_TRACE_STATE or not trace_state else _trace_state(context)
    if state:
        parts.append(_len_field(b"\x1a", state.encode()))
    if parent is not None:
        parts.append(b"\x22\x08" + parent[1].to_bytes(8, "big"))  # its span id
    name = span._name
    name_field = names.get(name) if names is not None else None
    if name_field is None:
        name_field = _name_field(name)
        if names is not None and len(names) < _MAX_CACHED_NAMES:
            names[name] = name_field
    parts.append(name_field)
    parts.append(_KIND_FIELDS[id(span._kind)])
    parts.append(_pack_times(0x39, span._start_time or 0, 0x41, span._end_time or 0))
    attributes = span._attributes
    if attributes:
        parts.append(attributes_body(attributes, b"\x4a"))
    if flags & 1 and not (attributes and semconv.SAMPLING in attributes):
        parts.append(_HEAD_SAMPLING)
        if state:
            parts.append(_weight_field(state))
    if attributes:
        dropped = span.dropped_attributes
        if dropped:
            parts.append(b"\x50" + varint(dropped))
    events = span._events
    if events:
        parts.extend(_event(e) for e in events)
        if span.dropped_events:
            parts.append(b"\x60" + varint(span.dropped_events))
    links = span._links
    if links:
        parts.extend(_link(link) for link in links)
        if span.dropped_links:
            parts.append(b"\x70" + varint(span.dropped_links))
    parts.append(_status_field(span._status))
    parts.append(_FLAGS_REMOTE if parent is not None and parent[2] else _FLAGS_LOCAL)  # parent[2]: is_remote
    return b"".join(parts)


def _resource(resource: Resource) -> bytes:
    return attributes_body(resource.attributes, b"\x0a")


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    body = _len_field(b"\x0a", scope.name.encode()) if scope.name else b""
    if scope.version:
        body += _len_field(b"\x12", scope.version.encode())
    body += attributes_body(scope.attributes, b"\x1a")
    return body


class OtlpEncoder:
    """Encodes batches of spans into ``ExportTraceServiceRequest`` bytes.

    Resources and scopes are few and long-lived, so their encodings are cached by identity.
    """

    def __init__(self) -> None:
        self._resource_cache: dict[int, tuple[Resource, bytes]] = {}
        self._scope_cache: dict[int, tuple[InstrumentationScope | None, bytes]] = {}
        self._names: dict[str, bytes] = {}
        self.rebuilt_spans = 0  # spans encoded from rebuilt values (encodable.py says why)
        self.unencodable_spans = 0  # spans left out: not even rebuilt could they be encoded
        self._warned_at_s: float | None = None

    def _cached_resource(self, resource: Resource) -> bytes:
        hit = self._resource_cache.get(id(resource))
        if hit is not None and hit[0] is resource:
            return hit[1]
        if len(self._resource_cache) > 64:
            self._resource_cache.clear()
        encoded = _resource(resource)
        self._resource_cache[id(resource)] = (resource, encoded)
        return encoded

    def _cached_scope(self, scope: InstrumentationScope | None) -> bytes:
        hit = self._scope_cache.get(id(scope))
        if hit is not None and hit[0] is scope:
            return hit[1]
        if len(self._scope_cache) > 256:
            self._scope_cache.clear()
        encoded = _scope(scope)
        self._scope_cache[id(scope)] = (scope, encoded)
        return encoded

    def _encode_rebuilt(self, span: ReadableSpan) -> bytes | None:
        """`span` encoded from values OTLP can carry, or None (counted) when even that fails."""
        from tracer.encodable import rebuilt  # rarely needed: kept out of the tracer's import

        try:
            body = encode_span(rebuilt(span))
        except Exception as exc:  # noqa: BLE001 - this span is lost; the batch is not
            self.unencodable_spans += 1
            self._warn(f"a span could not be encoded and was left out ({type(exc).__name__})")
            return None
        self.rebuilt_spans += 1
        self._warn("a span held values OTLP cannot carry (encodable.py says which); they were sent as text")
        return body

    def _warn(self, what: str) -> None:
        """One line a minute at most: a span built in a loop would otherwise log a line each."""
        now_s = time.monotonic()
        if self._warned_at_s is None or now_s - self._warned_at_s >= WARN_INTERVAL_S:
            self._warned_at_s = now_s
            _logger.warning("fluoro: %s", what)

    def encode(self, spans: Iterable[ReadableSpan]) -> bytes:
        """The request body for `spans`, grouped by resource then instrumentation scope."""
        groups: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]] = {}
        for span in spans:
            resource = span._resource  # the fields, not ReadableSpan's properties (a call each)
            scope = span._instrumentation_scope
            by_scope = groups.setdefault(id(resource), (resource, {}))[1]
            entry = by_scope.get(id(scope))
            if entry is None:
                entry = by_scope[id(scope)] = (scope, [])
            try:
                body: bytes | None = encode_span(span, self._names)
            except Exception:  # noqa: BLE001 - a value it cannot take: that span alone is rebuilt
                body = self._encode_rebuilt(span)
            if body is None:
                continue
            entry[1].append(b"\x12" + varint(len(body)) + body)
        out = []
        for resource, by_scope in groups.values():
            rs_body = [_len_field(b"\x0a", self._cached_resource(resource))]
            for scope, span_fields in by_scope.values():
                ss_body = _len_field(b"\x0a", self._cached_scope(scope)) + b"".join(span_fields)
                if scope is not None and scope.schema_url:
                    ss_body += _len_field(b"\x1a", scope.schema_url.encode())
                rs_body.append(_len_field(b"\x12", ss_body))
            if resource.schema_url:
                rs_body.append(_len_field(b"\x1a", resource.schema_url.encode()))
            out.append(_len_field(b"\x0a", b"".join(rs_body)))
        return b"".join(out)
