"""Spans as the filter language reads them (spanlang.held_span), from where a test finds them:
the spans the tracer finished in this process, or a running collector's answer.

A captured span is given its meaning by the collector's own rules (spanlang/derive.py), so a
test sees the flags, targets and nodes the map would show for the same span.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from spanlang import derive
from spanlang.held_span import AnnotationValue, HeldSpan
from tracer import semconv


def _annotations(attributes: Mapping[str, Any]) -> dict[str, AnnotationValue]:
    """Annotations as the collector stores them: numbers as floats."""
    if not derive.needs_annotations(attributes):
        return {}
    found = derive.annotations_of(attributes)
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in found.items()}


def held_from_captured(span: ReadableSpan) -> HeldSpan:
    """A span this process finished, with the meaning the collector would give it."""
    context = span.context
    assert context is not None
    attributes = dict(span.attributes or {})
    resource = span.resource.attributes
    service, version = derive.resource_meaning(
        resource.get("service.name"), resource.get(semconv.FAAS_VERSION), resource.get("service.version")
    )
    has_exception = any(event.name == "exception" for event in span.events)
    meaning = derive.span_meaning(attributes, span.kind.name, span.status.status_code.value, has_exception, version)
    method, _, url, http_status, user_agent, error, fault, throttle, cold, origin, target_type, target_name, _, user = (
        meaning
    )
    parent = span.parent
    return HeldSpan(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{parent.span_id:016x}" if parent is not None and parent.is_valid else None,
        service=service,
        name=span.name,
        kind=span.kind.name,
        start_ns=span.start_time or 0,
        duration_ns=max(0, (span.end_time or 0) - (span.start_time or 0)),
        origin=origin,
        target_type=target_type,
        target_name=target_name,
        error=error,
        fault=fault,
        throttle=throttle,
        cold_start=bool(cold),
        http_status=http_status,
        http_url=url,
        http_method=method,
        http_user_agent=user_agent,
        user=user,
        annotations=_annotations(attributes),
        links=tuple((f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in span.links),
        attributes=attributes,
        resource=dict(resource),
    )


def held_from_collector(span: Mapping[str, Any]) -> HeldSpan:
    """A span as a collector's ``GET /api/traces/{id}`` answers it."""
    http: Mapping[str, Any] = span.get("http") or {}
    target: Mapping[str, Any] = span.get("target") or {}
    return HeldSpan(
        trace_id=str(span["trace_id"]),
        span_id=str(span["span_id"]),
        parent_span_id=span.get("parent_span_id"),
        service=str(span["service"]),
        name=str(span["name"]),
        kind=str(span["kind"]),
        start_ns=int(span["start_ns"]),
        duration_ns=round(float(span["duration_ms"]) * 1e6),
        origin=span.get("origin"),
        target_type=target.get("type"),
        target_name=target.get("name"),
        error=bool(span.get("error")),
        fault=bool(span.get("fault")),
        throttle=bool(span.get("throttle")),
        cold_start=bool(span.get("cold_start")),
        in_progress=bool(span.get("in_progress")),
        http_status=http.get("status"),
        http_url=http.get("url"),
        http_method=http.get("method"),
        http_user_agent=http.get("user_agent"),
        user=span.get("user"),
        annotations=dict(span.get("annotations") or {}),
        links=tuple((str(link["trace_id"]), str(link["span_id"])) for link in span.get("links") or ()),
        attributes=dict(span.get("attributes") or {}),
        resource=dict(span.get("resource") or {}),
    )
