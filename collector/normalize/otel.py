"""One OpenTelemetry span (already decoded from protobuf or JSON) into the span row.

Both OTLP decoders hand plain Python values to :func:`add_otel_span`, which validates the ids,
derives the X-Ray notions (derive.py) and appends the row, its annotations and its links.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from collector.model import SpanBatchBuilder, SpanRow
from collector.normalize.derive import annotations_of, flags_of, http_status_of, origin_of, target_of
from tracer import semconv

KIND_NAMES = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
ZERO_TRACE = bytes(16)
ZERO_SPAN = bytes(8)
MAX_JSON_CHARS = 64 * 1024
MAX_NAME_CHARS = 200  # X-Ray's limit on a segment's name


@dataclass(frozen=True)
class ResourceInfo:
    """What a span takes from its resource, decoded once per ResourceSpans."""

    service: str
    function_version: str | None
    json: str


def resource_info(attributes: Mapping[str, Any]) -> ResourceInfo:
    service = attributes.get("service.name")
    version = attributes.get(semconv.FAAS_VERSION) or attributes.get("service.version")
    # Every span of the resource repeats these: capped, so a long name is not copied per span.
    return ResourceInfo(
        service=service[:MAX_NAME_CHARS] if isinstance(service, str) and service else "unknown_service",
        function_version=version[:MAX_NAME_CHARS] if isinstance(version, str) else None,
        json=to_json(attributes),
    )


def to_json(value: object) -> str:
    """Compact JSON text, capped: a hostile span cannot make one row arbitrarily large."""
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits, which orjson refuses
        text = json.dumps(value, default=str)
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
    error, fault, throttle = flags_of(attributes, status_code, kind_name, has_exception)
    target_type, target_name = target_of(attributes, kind_name)
    cold = attributes.get(semconv.FAAS_COLDSTART)
    get = attributes.get
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
            _text(get(semconv.HTTP_REQUEST_METHOD) or get(semconv.HTTP_METHOD_OLD)),
            _text(get(semconv.HTTP_ROUTE)),
            _text(get(semconv.URL_FULL) or get(semconv.HTTP_URL_OLD) or get(semconv.URL_PATH)),
            http_status_of(attributes),
            _text(get(semconv.USER_AGENT) or get("http.user_agent")),
            error,
            fault,
            throttle,
            cold if isinstance(cold, bool) else None,
            origin_of(attributes),
            target_type,
            target_name,
            _text(get(semconv.FAAS_VERSION)) or resource.function_version,
            _text(get("enduser.id")),
            False,
            "otlp",
            to_json(attributes) if attributes else None,
            to_json([{"name": n, "time_ns": t, "attributes": a} for n, t, a in events]) if events else None,
            resource.json,
        )
    )
    if builder_needs_annotations(attributes):
        for key, value in annotations_of(attributes).items():
            builder.add_annotation(trace_id, span_int, start_ns, key, value)
    for linked_trace, linked_span in links:
        if len(linked_trace) == 16 and len(linked_span) == 8:
            builder.add_link(trace_id, span_int, start_ns, linked_trace, int.from_bytes(linked_span, "big"))


def builder_needs_annotations(attributes: Mapping[str, Any]) -> bool:
    """Cheap pre-check: most spans carry no annotation at all."""
    return "aws.xray.annotations" in attributes or any(key.startswith(semconv.ANNOTATION_PREFIX) for key in attributes)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
