"""Stored spans in Jaeger's JSON model, as Jaeger's query service answers (and Grafana reads).

A trace is ``{traceID, spans, processes, warnings}``; a span has ``operationName``, its parent
and links as ``references`` (CHILD_OF, FOLLOWS_FROM), ``startTime`` and ``duration`` in
microseconds, typed ``tags`` (``string``, ``bool``, ``int64``, ``float64``), ``logs`` from its
events, and a ``processID`` naming its service and resource in ``processes``. Fluoro's own
meaning rides along as tags: ``span.kind``, ``error`` for a failed span (an X-Ray fault or
error), ``fluoro.throttle``, ``faas.coldstart``, ``fluoro.origin``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collector.storage.protocols import StoredSpan

JaegerTag = dict[str, Any]


def tag(key: str, value: object) -> JaegerTag:
    """One typed tag; anything not a bool, int or float is a string (lists as JSON-ish text)."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    return {"key": key, "type": "string", "value": value if isinstance(value, str) else str(value)}


def _span_tags(span: StoredSpan) -> list[JaegerTag]:
    tags = [tag(key, value) for key, value in span.attributes.items()]
    tags.append(tag("span.kind", span.kind.lower()))
    if span.fault or span.error or span.status_code == 2:
        tags.append(tag("error", True))
    if span.status_code == 2:
        tags.append(tag("otel.status_code", "ERROR"))
        if span.status_message:
            tags.append(tag("otel.status_description", span.status_message))
    for key, on in (("fluoro.throttle", span.throttle), ("faas.coldstart", span.cold_start)):
        if on and key not in span.attributes:
            tags.append(tag(key, True))
    if span.origin and "fluoro.origin" not in span.attributes:
        tags.append(tag("fluoro.origin", span.origin))
    return tags


def _logs(span: StoredSpan) -> list[dict[str, Any]]:
    logs = []
    for event in span.events:
        if not isinstance(event, Mapping):
            continue
        fields = [tag("event", event.get("name", ""))]
        attributes = event.get("attributes")
        if isinstance(attributes, Mapping):
            fields += [tag(str(key), value) for key, value in attributes.items()]
        time_ns = event.get("time_ns")
        logs.append({"timestamp": (time_ns if isinstance(time_ns, int) else span.start_ns) // 1000, "fields": fields})
    return logs


def _references(span: StoredSpan) -> list[dict[str, str]]:
    found = []
    if span.parent_span_id is not None:
        found.append({"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id})
    found += [{"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id} for link in span.links]
    return found


def jaeger_trace(trace_id: str, spans: Sequence[StoredSpan]) -> dict[str, Any]:
    """One trace in Jaeger's model (its processes numbered p1, p2, ... in the order they appear)."""
    processes: dict[str, dict[str, Any]] = {}
    process_of: dict[tuple[str, str], str] = {}
    out = []
    for span in spans:
        resource = {k: v for k, v in span.resource.items() if k != "service.name"}
        identity = (span.service, repr(sorted(resource.items())))
        if identity not in process_of:
            process_of[identity] = f"p{len(process_of) + 1}"
            tags = [tag(str(k), v) for k, v in resource.items()]
            processes[process_of[identity]] = {"serviceName": span.service, "tags": tags}
        out.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "flags": 1,
                "operationName": span.name,
                "references": _references(span),
                "startTime": span.start_ns // 1000,
                "duration": span.duration_ns // 1000,
                "tags": _span_tags(span),
                "logs": _logs(span),
                "processID": process_of[identity],
                "warnings": ["the span was still in progress when it was stored"] if span.in_progress else None,
            }
        )
    return {"traceID": trace_id, "spans": out, "processes": processes, "warnings": None}
