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
from collector.normalize.otel import add_otel_span, resource_info
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


def int64(value: object, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InvalidSpan(f"{field} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError as exc:
            raise InvalidSpan(f"{field} must be an integer, got {value!r}") from exc
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InvalidSpan(f"{field} must be an integer")


def any_value(value: object) -> Any:
    if not isinstance(value, Mapping):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int64(value["intValue"], "intValue")
    if "doubleValue" in value:
        number = value["doubleValue"]
        return float(number) if isinstance(number, (int, float, str)) else None
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes_of((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"]).hex()
        except (binascii.Error, TypeError):
            return None
    return None


def attributes_of(pairs: object) -> dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {str(kv["key"]): any_value(kv.get("value")) for kv in pairs if isinstance(kv, Mapping) and "key" in kv}


def _list(container: Mapping[str, Any], key: str) -> list[Any]:
    value = container.get(key)
    return value if isinstance(value, list) else []


def decode_json(body: bytes) -> SpanBatch:
    """Normalize a JSON request; raises UndecodableBody when it is not an OTLP/JSON object."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UndecodableBody(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UndecodableBody("an OTLP/JSON request must be a JSON object with resourceSpans")
    builder = SpanBatchBuilder()
    for resource_spans in _list(document, "resourceSpans"):
        if not isinstance(resource_spans, Mapping):
            raise UndecodableBody("resourceSpans must hold objects")
        resource = resource_info(attributes_of((resource_spans.get("resource") or {}).get("attributes")))
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans") if isinstance(scope_spans, Mapping) else []:
                try:
                    add_json_span(builder, resource, span)
                except InvalidSpan as exc:
                    builder.reject(1, str(exc))
    return builder.build()


def add_json_span(builder: SpanBatchBuilder, resource: Any, span: object) -> None:
    if not isinstance(span, Mapping):
        raise InvalidSpan("a span must be an object")
    raw_status = span.get("status")
    status: Mapping[str, Any] = raw_status if isinstance(raw_status, Mapping) else {}
    add_otel_span(
        builder,
        resource,
        trace_id=hex_id(span.get("traceId"), 16, "traceId"),
        span_id=hex_id(span.get("spanId"), 8, "spanId"),
        parent_span_id=hex_id(span.get("parentSpanId"), 8, "parentSpanId"),
        name=str(span.get("name", "")),
        kind=int64(span.get("kind"), "kind"),
        start_ns=int64(span.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=int64(span.get("endTimeUnixNano"), "endTimeUnixNano"),
        status_code=int64(status.get("code"), "status.code"),
        status_message=str(status.get("message", "")),
        attributes=attributes_of(span.get("attributes")),
        events=[
            (str(e.get("name", "")), int64(e.get("timeUnixNano"), "timeUnixNano"), attributes_of(e.get("attributes")))
            for e in _list(span, "events")
            if isinstance(e, Mapping)
        ],
        links=[
            (hex_id(link.get("traceId"), 16, "links.traceId"), hex_id(link.get("spanId"), 8, "links.spanId"))
            for link in _list(span, "links")
            if isinstance(link, Mapping)
        ],
    )
