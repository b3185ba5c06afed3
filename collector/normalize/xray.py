"""X-Ray daemon datagrams (segment documents) into span rows.

A datagram is ``{"format": "json", "version": 1}\\n`` followed by one segment document, or one
independently sent subsegment (``"type": "subsegment"`` with ``parent_id``). A segment becomes
a SERVER span named and serviced by its ``name``; each subsegment (nested to any depth) becomes
a span of the same service, CLIENT when it calls AWS (``namespace: aws``) or a remote host
(``namespace: remote``), which the service map then draws as an inferred node. X-Ray trace ids
``1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`` are the 32 hex digits OpenTelemetry's X-Ray propagator
uses, so a trace that mixes X-Ray SDK and OpenTelemetry services joins up. A segment's fields
are stated as the OpenTelemetry attributes they mean and derive.py, the derivation OTLP spans
get, says what the span means: one rule set for both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from collector.model import SpanBatchBuilder, SpanRow
from collector.normalize.otel import to_json
from spanlang.derive import annotations_of, needs_annotations, span_meaning
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


def _meaning(doc: Mapping[str, Any], namespace: str, children: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A segment's fields as the OpenTelemetry attributes they mean, for derive.py to read."""
    http = _object(doc, "http")
    request, response = _object(http, "request"), _object(http, "response")
    status = response.get("status")
    fields: dict[str, Any] = {
        semconv.ERROR: bool(doc.get("error")),
        semconv.FAULT: bool(doc.get("fault")),
        semconv.THROTTLE: bool(doc.get("throttle")),
        semconv.HTTP_RESPONSE_STATUS_CODE: status if isinstance(status, int) and not isinstance(status, bool) else None,
        semconv.HTTP_REQUEST_METHOD: _text(request.get("method")),
        semconv.URL_FULL: _text(request.get("url")),
        semconv.USER_AGENT: _text(request.get("user_agent")),
        "enduser.id": _text(doc.get("user")),
        semconv.ORIGIN: _text(doc.get("origin")),
    }
    if any(child.get("name") == semconv.INITIALIZATION_SPAN_NAME for child in children):
        fields[semconv.FAAS_COLDSTART] = True
    name = _text(doc.get("name"))
    if namespace == "aws":
        aws = _object(doc, "aws")
        fields.update(
            {
                semconv.RPC_SYSTEM: "aws-api",
                semconv.RPC_SERVICE: name,
                semconv.AWS_DYNAMODB_TABLE_NAMES: _text(aws.get("table_name")),
                semconv.AWS_S3_BUCKET: _text(aws.get("bucket_name")),
                semconv.AWS_SQS_QUEUE_URL: _text(aws.get("queue_url")),
                semconv.AWS_KINESIS_STREAM: _text(aws.get("stream_name")),
                semconv.AWS_LAMBDA_FUNCTION: _text(aws.get("function_name")),
            }
        )
    elif namespace == "remote":
        fields[semconv.SERVER_ADDRESS] = name
    return {key: value for key, value in fields.items() if value is not None}


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
        children = [c for c in doc.get("subsegments") or [] if isinstance(c, Mapping)]
        attributes: dict[str, Any] = {"xray.namespace": namespace} if namespace else {}
        for key in ("aws", "metadata", "sql", "service", "precursor_ids"):
            if key in doc:
                attributes[f"xray.{key}"] = doc[key]
        prefix = semconv.ANNOTATION_PREFIX
        annotations = {prefix + str(key): value for key, value in _object(doc, "annotations").items()}
        attributes.update(annotations)
        meaning = {**_meaning(doc, namespace, children), **annotations}
        events = _exceptions(doc)
        kind = "SERVER" if is_segment else ("CLIENT" if namespace in ("aws", "remote") else "INTERNAL")
        status_code = 2 if meaning[semconv.FAULT] or meaning[semconv.ERROR] else 0
        self.builder.add_span(
            SpanRow(
                trace_id,
                span_id,
                parent_id,
                service,
                str(doc.get("name", "")),
                kind,
                start_ns,
                end_ns - start_ns,
                status_code,
                None,
                *span_meaning(meaning, kind, status_code, bool(events)),
                in_progress,
                "xray",
                to_json(attributes) if attributes else None,
                to_json(events) if events else None,
                None,
                None,  # X-Ray's daemon protocol states no sampling weight: each segment counts once
            )
        )
        if needs_annotations(meaning):
            for key, value in annotations_of(meaning).items():
                self.builder.add_annotation(trace_id, span_id, start_ns, key, value)
        for child in children:
            self._add(child, trace_id, span_id, service, is_segment=False, depth=depth + 1)
