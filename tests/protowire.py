"""Protobuf wire format written by hand, for requests no generated message would encode.

Hostile clients send what canonical encoders never do (a field twice, a group, two members of a
oneof, an enum past 32 bits); these helpers write such bytes directly, field by field.
"""

from __future__ import annotations

START_NS = 1_700_000_000_000_000_000


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | 0x80 if value else low)
        if not value:
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint((field << 3) | wire)


def delimited(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def text(field: int, value: str | bytes) -> bytes:
    return delimited(field, value.encode() if isinstance(value, str) else value)


def number(field: int, value: int) -> bytes:
    return tag(field, 0) + varint(value)


def fixed64(field: int, value: int) -> bytes:
    return tag(field, 1) + (value & ((1 << 64) - 1)).to_bytes(8, "little")


def key_value(key: str | bytes, any_value: bytes) -> bytes:
    """A KeyValue message: its key and the bytes of its AnyValue."""
    return text(1, key) + delimited(2, any_value)


def string_value(value: str) -> bytes:
    return text(1, value)


def array_value(*values: bytes) -> bytes:
    return delimited(5, b"".join(delimited(1, v) for v in values))


def kvlist_value(*pairs: bytes) -> bytes:
    return delimited(6, b"".join(delimited(1, p) for p in pairs))


def span(
    attributes: bytes = b"",
    *,
    trace_id: bytes = b"\x11" * 16,
    span_id: bytes = b"\x22" * 8,
    start_ns: int = START_NS,
    end_ns: int | None = None,
    kind: int = 3,
    extra: bytes = b"",
) -> bytes:
    """A Span message; `attributes` is a run of field-9 KeyValues, `extra` any further fields."""
    return (
        delimited(1, trace_id)
        + delimited(2, span_id)
        + text(5, "op")
        + number(6, kind)
        + fixed64(7, start_ns)
        + fixed64(8, start_ns + 100_000_000 if end_ns is None else end_ns)
        + attributes
        + extra
    )


def attribute(key: str, any_value: bytes) -> bytes:
    """A span attribute (field 9)."""
    return delimited(9, key_value(key, any_value))


def request(spans: list[bytes], resource: bytes | None = b"", resource_spans_extra: bytes = b"") -> bytes:
    """An ExportTraceServiceRequest of one ResourceSpans with one ScopeSpans."""
    scope_spans = b"".join(delimited(2, s) for s in spans)
    body = (delimited(1, resource) if resource is not None else b"") + resource_spans_extra + delimited(2, scope_spans)
    return delimited(1, body)
