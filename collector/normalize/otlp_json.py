"""OTLP/JSON bodies into span rows, per the OTLP/JSON mapping.

The mapping differs from protobuf's canonical JSON in ways clients rely on: trace and span ids
are hex (either case), enums are integers, 64-bit integers arrive as strings or numbers, keys
are lowerCamelCase, and unknown fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from collector.model import SpanBatch, SpanBatchBuilder
from collector.normalize.otel import ResourceInfo, add_otel_span, resource_info
from collector.normalize.otlp_proto import UndecodableBody


class InvalidSpan(ValueError):
    """One span cannot be used (bad id, bad number); the rest of the request can."""


def hex_id(value: object, size: int, field: str) -> bytes:
    if value in (None, ""):
        return b""
    if not isinstance(value, str) or len(value) != size * 2:
        raise InvalidSpan(f"{field} must be {size * 2} hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidSpan(f"{field} is not hex") from exc


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Depth of an attribute's value as the protobuf paths count it (collector/normalize/otlp_proto.py).
MAX_VALUE_DEPTH = 32
SPECIAL_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def int64(value: object, field: str) -> int:
    if value is None:
        return 0
    number: int
    if isinstance(value, bool):
        raise InvalidSpan(f"{field} must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError as exc:
            raise InvalidSpan(f"{field} must be an integer, got {value[:40]!r}") from exc
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise InvalidSpan(f"{field} must be an integer")
    if not INT64_MIN <= number <= 2**64 - 1:
        raise InvalidSpan(f"{field} must be within int64 or uint64")
    return number


def signed64(value: object, field: str) -> int:
    number = int64(value, field)
    if number > INT64_MAX:
        raise InvalidSpan(f"{field} must be within int64")
    return number


def double(value: object) -> float:
    """proto3 JSON's double: a number, or a string of one ("NaN", "Infinity" and "-Infinity" too)."""
    if isinstance(value, bool):
        raise InvalidSpan("doubleValue must be a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value in SPECIAL_DOUBLES:
            return SPECIAL_DOUBLES[value]
        try:
            return float(value)
        except ValueError as exc:
            raise InvalidSpan(f"doubleValue must be a number, got {value[:40]!r}") from exc
    raise InvalidSpan("doubleValue must be a number")


def _values(container: object, field: str) -> list[Any]:
    if container is None:
        return []
    if not isinstance(container, Mapping):
        raise InvalidSpan(f"{field} must be an object")
    values = container.get("values")
    if values is None:
        return []
    if not isinstance(values, list):
        raise InvalidSpan(f"{field}.values must be a list")
    return values


def any_value(value: object, depth: int = 1) -> Any:
    """An AnyValue; InvalidSpan when it is not one (the span is refused, not the request)."""
    if depth > MAX_VALUE_DEPTH:
        raise InvalidSpan("attribute values nested too deep")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidSpan("an attribute value must be an object")
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise InvalidSpan("stringValue must be a string")
        return text
    if "intValue" in value:
        return signed64(value["intValue"], "intValue")
    if "doubleValue" in value:
        return double(value["doubleValue"])
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise InvalidSpan("boolValue must be true or false")
        return flag
    if "arrayValue" in value:
        return [any_value(v, depth + 1) for v in _values(value["arrayValue"], "arrayValue")]
    if "kvlistValue" in value:
        return attributes_of(_values(value["kvlistValue"], "kvlistValue"), depth + 1)
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"], validate=True).hex()
        except (binascii.Error, TypeError, ValueError) as exc:
            raise InvalidSpan("bytesValue must be base64") from exc
    return None


def attributes_of(pairs: object, depth: int = 1) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise InvalidSpan("attributes must be a list")
    attributes: dict[str, Any] = {}
    for kv in pairs:
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            raise InvalidSpan("an attribute must be an object with a string key")
        attributes[kv["key"]] = any_value(kv.get("value"), depth)
    return attributes


def text_field(container: Mapping[str, Any], key: str) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidSpan(f"{key} must be a string")
    return value


def list_of(container: Mapping[str, Any], key: str) -> list[Any]:
    """The list at `key`, or none when it is missing or not a list."""
    value = container.get(key)
    return value if isinstance(value, list) else []


def resource_lists(body: bytes, key: str) -> list[Mapping[str, Any]]:
    """The objects under `key` (resourceSpans, resourceLogs) of a JSON request body;
    UndecodableBody when the body is not a JSON object or they are not objects."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UndecodableBody(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UndecodableBody(f"an OTLP/JSON request must be a JSON object with {key}")
    found = list_of(document, key)
    if not all(isinstance(item, Mapping) for item in found):
        raise UndecodableBody(f"{key} must hold objects")
    return found


def decode_json(body: bytes) -> SpanBatch:
    """Normalize a JSON request; raises UndecodableBody when it is not an OTLP/JSON object.

    A bad value (a double that is no number, a list where an object goes) refuses its span, or
    every span of its resource when it is the resource's, with the reason; never the request.
    """
    builder = SpanBatchBuilder()
    for resource_spans in resource_lists(body, "resourceSpans"):
        spans = [
            span
            for scope_spans in list_of(resource_spans, "scopeSpans")
            if isinstance(scope_spans, Mapping)
            for span in list_of(scope_spans, "spans")
        ]
        try:
            resource = resource_of(resource_spans.get("resource"))
        except InvalidSpan as exc:
            builder.reject(len(spans), f"resource: {exc}")
            continue
        for span in spans:
            try:
                add_json_span(builder, resource, span)
            except InvalidSpan as exc:
                builder.reject(1, str(exc))
    return builder.build()


def resource_of(resource: object) -> ResourceInfo:
    if resource is None:
        return resource_info({})
    if not isinstance(resource, Mapping):
        raise InvalidSpan("must be an object")
    return resource_info(attributes_of(resource.get("attributes")))


def add_json_span(builder: SpanBatchBuilder, resource: ResourceInfo, span: object) -> None:
    if not isinstance(span, Mapping):
        raise InvalidSpan("a span must be an object")
    raw_status = span.get("status")
    if raw_status is not None and not isinstance(raw_status, Mapping):
        raise InvalidSpan("status must be an object")
    status: Mapping[str, Any] = raw_status or {}
    events = []
    for event in list_of(span, "events"):
        if not isinstance(event, Mapping):
            raise InvalidSpan("an event must be an object")
        events.append(
            (
                text_field(event, "name"),
                int64(event.get("timeUnixNano"), "timeUnixNano"),
                attributes_of(event.get("attributes")),
            )
        )
    links = []
    for link in list_of(span, "links"):
        if not isinstance(link, Mapping):
            raise InvalidSpan("a link must be an object")
        attributes_of(link.get("attributes"))  # checked like the span's, though not stored
        links.append((hex_id(link.get("traceId"), 16, "links.traceId"), hex_id(link.get("spanId"), 8, "links.spanId")))
    add_otel_span(
        builder,
        resource,
        trace_id=hex_id(span.get("traceId"), 16, "traceId"),
        span_id=hex_id(span.get("spanId"), 8, "spanId"),
        parent_span_id=hex_id(span.get("parentSpanId"), 8, "parentSpanId"),
        name=text_field(span, "name"),
        kind=enum32(span.get("kind"), "kind"),
        start_ns=int64(span.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=int64(span.get("endTimeUnixNano"), "endTimeUnixNano"),
        status_code=enum32(status.get("code"), "status.code"),
        status_message=text_field(status, "message"),
        attributes=attributes_of(span.get("attributes")),
        events=events,
        links=links,
    )


def enum32(value: object, field: str) -> int:
    """An enum, which protobuf keeps as int32."""
    number = int64(value, field)
    if not -(2**31) <= number < 2**31:
        raise InvalidSpan(f"{field} is out of range")
    return number
