"""A stored span as the API shows it: hex ids, milliseconds, the status by name, HTTP grouped."""

from __future__ import annotations

from typing import Any

from collector.storage.protocols import StoredSpan

STATUS_NAMES = ("UNSET", "OK", "ERROR")


def span_json(span: StoredSpan) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "service": span.service,
        "name": span.name,
        "kind": span.kind,
        "start_ns": span.start_ns,
        "duration_ms": span.duration_ns / 1e6,
        "status_code": STATUS_NAMES[span.status_code],
        "status_message": span.status_message,
        "http": {
            "method": span.http_method,
            "route": span.http_route,
            "url": span.http_url,
            "status": span.http_status,
            "user_agent": span.http_user_agent,
        },
        "error": span.error,
        "fault": span.fault,
        "throttle": span.throttle,
        "cold_start": span.cold_start,
        "origin": span.origin,
        "target": {"type": span.target_type, "name": span.target_name} if span.target_type else None,
        "function_version": span.function_version,
        "user": span.user_id,
        "in_progress": span.in_progress,
        "source": span.source,
        "attributes": span.attributes,
        "events": span.events,
        "resource": span.resource,
        "annotations": span.annotations,
        "links": [{"trace_id": link.trace_id, "span_id": link.span_id} for link in span.links],
    }
