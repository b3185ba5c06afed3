"""One OpenTelemetry span (already decoded from protobuf or JSON) into the span row.

Both Python OTLP decoders hand plain Python values to :func:`add_otel_span`, which validates
the ids, has derive.py say what the span means and appends the row, its annotations and links.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from collector.model import SpanBatchBuilder, SpanRow
from spanlang.derive import (
    annotations_of,
    needs_annotations,
    resource_meaning,
    sampling_weight_of,
    span_meaning,
)
from tracer import semconv

KIND_NAMES = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
ZERO_TRACE = bytes(16)
ZERO_SPAN = bytes(8)
MAX_JSON_CHARS = 64 * 1024


@dataclass(frozen=True)
class ResourceInfo:
    """What a span takes from its resource, decoded once per ResourceSpans."""

    service: str
    function_version: str | None
    json: str


def resource_info(attributes: Mapping[str, Any]) -> ResourceInfo:
    get = attributes.get
    service, version = resource_meaning(get("service.name"), get(semconv.FAAS_VERSION), get("service.version"))
    return ResourceInfo(service=service, function_version=version, json=to_json(attributes))


def to_json(value: object) -> str:
    """Compact JSON text, capped: a hostile span cannot make one row arbitrarily large."""
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits, which orjson refuses
        text = json.dumps(value, default=str, ensure_ascii=False)  # as orjson writes: UTF-8 as it is
    if len(text) > MAX_JSON_CHARS:
        return orjson.dumps({"truncated": True, "chars": len(text)}).decode()
    return text


INT64_MAX = 2**63 - 1


def invalid_ids(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str | None:
    """Why the ids are unusable (OTLP: 16-byte trace id, 8-byte span ids, not all zero)."""
    if len(trace_id) != 16 or trace_id == ZERO_TRACE:
        return "trace_id must be 16 non-zero bytes"
    if len(span_id) != 8 or span_id == ZERO_SPAN:
        return "span_id must be 8 non-zero bytes"
    if parent_span_id and len(parent_span_id) != 8:
        return "parent_span_id must be empty or 8 bytes"
    return None


def add_otel_span(
    builder: SpanBatchBuilder,
    resource: ResourceInfo,
    *,
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: bytes,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    status_code: int,
    status_message: str,
    attributes: dict[str, Any],
    events: Sequence[tuple[str, int, dict[str, Any]]],
    links: Sequence[tuple[bytes, bytes]],
) -> None:
    """Validate and append one span (or count it as rejected)."""
    problem = invalid_ids(trace_id, span_id, parent_span_id)
    if problem is None and not (0 <= start_ns <= INT64_MAX and 0 <= end_ns <= INT64_MAX):
        problem = "start and end times must be nanoseconds within int64"
    elif problem is None and end_ns < start_ns:
        problem = "a span must not end before it starts"
    if problem is not None:
        builder.reject(1, problem)
        return
    span_int = int.from_bytes(span_id, "big")
    kind_name = KIND_NAMES[kind] if 0 <= kind < len(KIND_NAMES) else "UNSPECIFIED"
    has_exception = any(event[0] == "exception" for event in events)
    builder.add_span(
        SpanRow(
            trace_id,
            span_int,
            int.from_bytes(parent_span_id, "big") if parent_span_id else None,
            resource.service,
            name,
            kind_name,
            start_ns,
            end_ns - start_ns,
            status_code if 0 <= status_code <= 2 else 0,
            status_message or None,
            *span_meaning(attributes, kind_name, status_code, has_exception, resource.function_version),
            False,
            "otlp",
            to_json(attributes) if attributes else None,
            to_json([{"name": n, "time_ns": t, "attributes": a} for n, t, a in events]) if events else None,
            resource.json,
            sampling_weight_of(attributes),
        )
    )
    if needs_annotations(attributes):
        for key, value in annotations_of(attributes).items():
            builder.add_annotation(trace_id, span_int, start_ns, key, value)
    for linked_trace, linked_span in links:
        if len(linked_trace) == 16 and len(linked_span) == 8:
            builder.add_link(trace_id, span_int, start_ns, linked_trace, int.from_bytes(linked_span, "big"))
