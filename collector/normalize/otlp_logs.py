"""OTLP ``ExportLogsServiceRequest`` bodies, protobuf or JSON, into log rows.

Log records arrive over the same receivers as spans (``/v1/logs``, gRPC's LogsService) and go
the same way: into the ingest log, then the store, answered only once durable. Far fewer than
spans, so one Python path per encoding (protobuf on upb, JSON on orjson), no C decoder.

Each record keeps its time (its own, else when it was observed), the trace and span it was
written in, its service (its resource's, as a span's), its severity, and its body and
attributes as capped JSON text (a string body as it is, capped at the same 64 KiB). A record
with a bad value (an id of the wrong size, no time at all, a severity past 24) is refused alone,
with its reason, as spans are (partial success); times are checked with spans' in admission.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.model import ANNOTATION_SCHEMA, LINK_SCHEMA, LOG_SCHEMA, SPAN_SCHEMA, SpanBatch
from collector.normalize import otlp_json, otlp_proto
from collector.normalize.otel import MAX_JSON_CHARS, ResourceInfo, resource_info, to_json
from collector.normalize.otlp_proto import UndecodableBody

MAX_SEVERITY = 24  # SEVERITY_NUMBER_FATAL4
INT64_MAX = 2**63 - 1
MAX_SEVERITY_TEXT_CHARS = 64
NOT_A_REQUEST = "body is not a valid OTLP protobuf ExportLogsServiceRequest"


class InvalidRecord(ValueError):
    """One log record cannot be used; the rest of the request can."""


@dataclass
class LogRows:
    """Log records column by column, and those refused with their reasons."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in LOG_SCHEMA.names})
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, resource: ResourceInfo, record: LogRecord) -> None:
        values = (
            record.time_ns, record.trace_id, record.span_id, resource.service, record.severity_number,
            record.severity_text, record.body, record.attributes,
        )  # fmt: skip
        for name, value in zip(LOG_SCHEMA.names, values, strict=True):
            self.columns[name].append(value)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if reason not in self.reasons and len(self.reasons) < 5:
            self.reasons.append(reason)

    def build(self) -> SpanBatch:
        logs = pa.Table.from_pydict(self.columns, schema=LOG_SCHEMA)
        return SpanBatch(
            spans=SPAN_SCHEMA.empty_table(),
            annotations=ANNOTATION_SCHEMA.empty_table(),
            links=LINK_SCHEMA.empty_table(),
            rejected=self.rejected,
            rejection_reason="; ".join(self.reasons),
            logs=logs,
        )


@dataclass(frozen=True)
class LogRecord:
    time_ns: int
    trace_id: bytes | None
    span_id: int | None
    severity_number: int
    severity_text: str | None
    body: str | None
    attributes: str | None


def log_record(
    time_ns: int, observed_ns: int, trace_id: bytes, span_id: bytes, severity: int, severity_text: str,
    body: object, attributes: dict[str, Any],
) -> LogRecord:  # fmt: skip
    """One record's row, or InvalidRecord saying what is wrong with it."""
    when = time_ns or observed_ns
    if not 0 < when <= INT64_MAX:
        raise InvalidRecord("a log record needs a time or an observed time within int64 nanoseconds")
    if len(trace_id) not in (0, 16) or len(span_id) not in (0, 8):
        raise InvalidRecord("trace_id must be 16 bytes and span_id 8")
    if not 0 <= severity <= MAX_SEVERITY:
        raise InvalidRecord(f"severity_number must lie within 0-{MAX_SEVERITY}")
    return LogRecord(
        time_ns=when,
        trace_id=trace_id if trace_id.strip(b"\x00") else None,
        span_id=(int.from_bytes(span_id, "big") or None) if span_id else None,
        severity_number=severity,
        severity_text=severity_text[:MAX_SEVERITY_TEXT_CHARS] or None,
        body=_body_text(body),
        attributes=to_json(attributes) if attributes else None,
    )


def _body_text(body: object) -> str | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body if len(body) <= MAX_JSON_CHARS else body[:MAX_JSON_CHARS] + f"… ({len(body):,} characters)"
    return to_json(body)


def decode_logs_protobuf(body: bytes) -> SpanBatch:
    """Log records of a protobuf request; UndecodableBody for bytes that are not one."""
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, RuntimeError) as exc:  # upb raises RuntimeError past its own nesting limit
        raise UndecodableBody(f"{NOT_A_REQUEST}: {exc}") from exc
    rows = LogRows()
    for resource_logs in request.resource_logs:
        resource = resource_info(otlp_proto.attributes_of(resource_logs.resource.attributes))
        for scope_logs in resource_logs.scope_logs:
            otlp_proto.check_depth(scope_logs.scope.attributes)
            for record in scope_logs.log_records:
                body_value = otlp_proto.any_value(record.body) if record.HasField("body") else None
                try:
                    rows.add(resource, log_record(
                        record.time_unix_nano, record.observed_time_unix_nano, record.trace_id, record.span_id,
                        record.severity_number, record.severity_text, body_value,
                        otlp_proto.attributes_of(record.attributes),
                    ))  # fmt: skip
                except InvalidRecord as exc:
                    rows.reject(1, str(exc))
    return rows.build()


def decode_logs_json(body: bytes) -> SpanBatch:
    """Log records of an OTLP/JSON request (ids in hex, as for spans); a bad value refuses its
    record, or every record of its resource when it is the resource's."""
    rows = LogRows()
    for resource_logs in otlp_json.resource_lists(body, "resourceLogs"):
        records = [
            record
            for scope_logs in otlp_json.list_of(resource_logs, "scopeLogs")
            if isinstance(scope_logs, Mapping)
            for record in otlp_json.list_of(scope_logs, "logRecords")
        ]
        try:
            resource = otlp_json.resource_of(resource_logs.get("resource"))
        except otlp_json.InvalidSpan as exc:
            rows.reject(len(records), f"resource: {exc}")
            continue
        for record in records:
            try:
                rows.add(resource, _json_record(record))
            except (InvalidRecord, otlp_json.InvalidSpan) as exc:
                rows.reject(1, str(exc))
    return rows.build()


def _json_record(record: object) -> LogRecord:
    if not isinstance(record, Mapping):
        raise InvalidRecord("a log record must be an object")
    body = record.get("body")
    return log_record(
        otlp_json.signed64(record.get("timeUnixNano"), "timeUnixNano"),
        otlp_json.signed64(record.get("observedTimeUnixNano"), "observedTimeUnixNano"),
        otlp_json.hex_id(record.get("traceId"), 16, "traceId"),
        otlp_json.hex_id(record.get("spanId"), 8, "spanId"),
        otlp_json.enum32(record.get("severityNumber"), "severityNumber"),
        otlp_json.text_field(record, "severityText"),
        otlp_json.any_value(body) if body is not None else None,
        otlp_json.attributes_of(record.get("attributes")),
    )
