"""X-Ray daemon datagrams (segment documents) into span rows.

A datagram is ``{"format": "json", "version": 1}\\n`` followed by one segment document, or one
independently sent subsegment (``"type": "subsegment"`` with ``parent_id``). A segment becomes
a SERVER span named and serviced by its ``name``; each subsegment (nested to any depth) becomes
a span of the same service, CLIENT when it calls AWS (``namespace: aws``) or a remote host
(``namespace: remote``), which the service map then draws as an inferred node. X-Ray trace ids
``1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`` are the 32 hex digits OpenTelemetry's X-Ray propagator
uses, so a trace that mixes X-Ray SDK and OpenTelemetry services joins up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from collector.model import SpanBatchBuilder, SpanRow
from collector.normalize.derive import SERVICE_TYPES_BY_LOWER
from collector.normalize.otel import to_json
from tracer import semconv

MAX_DATAGRAM_BYTES = 64 * 1024
MAX_DEPTH = 64
_TRACE_ID = re.compile(r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


class BadSegment(ValueError):
    """The datagram is not a usable X-Ray segment document."""


def xray_trace_bytes(trace_id: object) -> bytes:
    match = _TRACE_ID.fullmatch(trace_id) if isinstance(trace_id, str) else None
    if match is None:
        raise BadSegment(f"bad trace_id {trace_id!r}: expected 1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy")
    return bytes.fromhex(match.group(1) + match.group(2))


def span_id_int(value: object, field: str) -> int:
    if not isinstance(value, str) or not _SPAN_ID.fullmatch(value):
        raise BadSegment(f"bad {field} {value!r}: expected 16 hex digits")
    number = int(value, 16)
    if number == 0:
        raise BadSegment(f"{field} must not be zero")
    return number


def parse_datagram(datagram: bytes) -> dict[str, Any]:
    """The segment document in a daemon datagram (header line, newline, JSON)."""
    if len(datagram) > MAX_DATAGRAM_BYTES:
        raise BadSegment("datagram over 64 KB")
    header, newline, body = datagram.partition(b"\n")
    if not newline:
        raise BadSegment("missing the header line")
    try:
        header_doc = orjson.loads(header)
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadSegment(f"not JSON: {exc}") from exc
    if not isinstance(header_doc, dict) or header_doc.get("format") != "json":
        raise BadSegment('header must be {"format": "json", "version": 1}')
    if not isinstance(document, dict):
        raise BadSegment("the segment must be a JSON object")
    return document


def _object(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested object of a hostile document: the mapping, or {} for anything else."""
    value = document.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    """A string field of a hostile document: the string, or None for anything else."""
    return value if isinstance(value, str) else None


def _status(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999 else None


def _seconds_to_ns(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 9.2e9:
        raise BadSegment(f"{field} must be epoch seconds")
    return int(value * 1_000_000_000)


def _exceptions(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    cause = document.get("cause")
    if not isinstance(cause, Mapping):
        return []
    events = []
    for exc in cause.get("exceptions") or []:
        if not isinstance(exc, Mapping):
            continue
        stack = "\n".join(
            f'  File "{frame.get("path", "?")}", line {frame.get("line", "?")}, in {frame.get("label", "?")}'
            for frame in exc.get("stack") or []
            if isinstance(frame, Mapping)
        )
        events.append(
            {
                "name": "exception",
                "time_ns": None,
                "attributes": {
                    "exception.type": str(exc.get("type", "")),
                    "exception.message": str(exc.get("message", "")),
                    "exception.stacktrace": stack,
                },
            }
        )
    return events


def _target(document: Mapping[str, Any], namespace: str) -> tuple[str | None, str | None]:
    name = str(document.get("name", ""))
    if namespace == "aws":
        aws = _object(document, "aws")
        queue_url = aws.get("queue_url")
        resource = (
            aws.get("table_name")
            or aws.get("bucket_name")
            or (str(queue_url).rstrip("/").rsplit("/", 1)[-1] if queue_url else None)
            or aws.get("stream_name")
            or aws.get("function_name")
            or name
        )
        return SERVICE_TYPES_BY_LOWER.get(name.lower(), f"AWS::{name}"), str(resource)
    if namespace == "remote":
        return "remote", name
    return None, None


class SegmentWalker:
    """Appends a segment document and its subsegments to a batch builder."""

    def __init__(self, builder: SpanBatchBuilder) -> None:
        self.builder = builder

    def add_document(self, document: Mapping[str, Any]) -> int:
        """Add one top-level document; returns how many spans it produced."""
        trace_id = xray_trace_bytes(document.get("trace_id"))
        independent = document.get("type") == "subsegment"
        service = "" if independent else str(document.get("name", ""))
        if not independent and not service:
            raise BadSegment("a segment needs a name")
        parent = document.get("parent_id")
        parent_id = span_id_int(parent, "parent_id") if parent is not None else None
        if independent and parent_id is None:
            raise BadSegment("an independent subsegment needs parent_id")
        before = self.builder.span_count
        self._add(document, trace_id, parent_id, service, is_segment=not independent, depth=0)
        return self.builder.span_count - before

    def _add(
        self,
        doc: Mapping[str, Any],
        trace_id: bytes,
        parent_id: int | None,
        service: str,
        *,
        is_segment: bool,
        depth: int,
    ) -> None:
        if depth > MAX_DEPTH:
            raise BadSegment("subsegments nested too deep")
        span_id = span_id_int(doc.get("id"), "id")
        start_ns = _seconds_to_ns(doc.get("start_time"), "start_time")
        in_progress = bool(doc.get("in_progress")) or doc.get("end_time") is None
        end_ns = start_ns if in_progress else _seconds_to_ns(doc.get("end_time"), "end_time")
        if end_ns < start_ns:
            raise BadSegment("end_time is before start_time")
        namespace = str(doc.get("namespace", ""))
        http = _object(doc, "http")
        request = _object(http, "request")
        response = _object(http, "response")
        children = [c for c in doc.get("subsegments") or [] if isinstance(c, Mapping)]
        annotations = _object(doc, "annotations")
        attributes: dict[str, Any] = {"xray.namespace": namespace} if namespace else {}
        for key in ("aws", "metadata", "sql", "service", "precursor_ids"):
            if key in doc:
                attributes[f"xray.{key}"] = doc[key]
        for key, value in annotations.items():
            attributes[semconv.ANNOTATION_PREFIX + str(key)] = value
        target_type, target_name = _target(doc, namespace)
        events = _exceptions(doc)
        fault = bool(doc.get("fault"))
        error = bool(doc.get("error"))
        self.builder.add_span(
            SpanRow(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent_id,
                service=service,
                name=str(doc.get("name", "")),
                kind="SERVER" if is_segment else ("CLIENT" if namespace in ("aws", "remote") else "INTERNAL"),
                start_ns=start_ns,
                duration_ns=end_ns - start_ns,
                status_code=2 if fault or error else 0,
                status_message=None,
                http_method=_text(request.get("method")),
                http_route=None,
                http_url=_text(request.get("url")),
                http_status=_status(response.get("status")),
                http_user_agent=_text(request.get("user_agent")),
                error=error,
                fault=fault,
                throttle=bool(doc.get("throttle")),
                cold_start=any(c.get("name") == semconv.INITIALIZATION_SPAN_NAME for c in children) or None,
                origin=_text(doc.get("origin")),
                target_type=target_type,
                target_name=target_name,
                function_version=None,
                user_id=_text(doc.get("user")),
                in_progress=in_progress,
                source="xray",
                attributes=to_json(attributes) if attributes else None,
                events=to_json(events) if events else None,
                resource=None,
            )
        )
        for key, value in annotations.items():
            if isinstance(value, (str, int, float, bool)):
                self.builder.add_annotation(trace_id, span_id, start_ns, str(key), value)
        for child in children:
            self._add(child, trace_id, span_id, service, is_segment=False, depth=depth + 1)
