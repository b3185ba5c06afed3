"""A Lambda environment's log lines, beside its traces: what CloudWatch Logs holds on AWS.

A function's output (its prints and its loggers; the worker points stdout at stderr) is read
line by line by a thread per environment, echoed to the demo's stderr as before, and each line
that names its trace becomes an OTLP log record: a JSON line with Powertools Logger's
``xray_trace_id`` (or an OpenTelemetry ``trace_id``/``traceId``/``otelTraceID``), or any line
holding an X-Ray trace id. A record of the invocation in flight hangs under the Lambda
service's span of that invocation (the ``Parent`` of the ``_X_AMZN_TRACE_ID`` it was given), as
the function's logs sit under its invocation on AWS. Records are sent in batches over OTLP/HTTP
(protobuf) to the collector's ``/v1/logs`` by one thread for the whole service; what the
collector cannot take is dropped and counted, never retried forever, and the backlog is bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

_logger = logging.getLogger(__name__)
XRAY_TRACE_ID = re.compile(r"\b1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})\b")
HEX_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
OTEL_TRACE_KEYS = ("trace_id", "traceId", "otelTraceID")
# Python's level names (Powertools writes them) as OpenTelemetry severity numbers.
SEVERITY = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "WARN": 13, "ERROR": 17, "CRITICAL": 21, "FATAL": 21}
LINE_CHARS = 64 * 1024  # a longer line is read as several
POWERTOOLS_TIME = "%Y-%m-%d %H:%M:%S,%f%z"


@dataclass(frozen=True)
class LineRecord:
    """One log line as a record: its trace (16 bytes), span (8 bytes or none), what it said."""

    time_ns: int
    trace_id: bytes
    span_id: bytes
    severity: int
    severity_text: str
    body: str
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)


def logs_url(traces_url: str) -> str:
    """The collector's OTLP/HTTP logs endpoint beside its traces endpoint."""
    return traces_url.removesuffix("/v1/traces") + "/v1/logs"


def header_ids(header: str | None) -> tuple[bytes, bytes]:
    """(trace id, parent span id) of an X-Ray trace header; empty when absent or malformed."""
    fields = dict(part.split("=", 1) for part in (header or "").split(";") if "=" in part)
    root = XRAY_TRACE_ID.fullmatch(fields.get("Root", ""))
    parent = fields.get("Parent", "")
    trace_id = bytes.fromhex(root.group(1) + root.group(2)) if root else b""
    span_id = bytes.fromhex(parent) if re.fullmatch(r"[0-9a-fA-F]{16}", parent) else b""
    return trace_id, span_id


def record_of(line: str, header: str | None, now_ns: int) -> LineRecord | None:
    """The record a line makes, or None when it names no trace."""
    text = line.rstrip("\n")
    document = _json_object(text)
    trace_id = _trace_of(document, text)
    if not trace_id:
        return None
    header_trace, parent = header_ids(header)
    span_id = parent if trace_id == header_trace else b""
    if document is None:
        return LineRecord(now_ns, trace_id, span_id, 0, "", text)
    level = str(document.get("level", "")).upper()
    message = document.get("message", text)
    return LineRecord(
        time_ns=_time_of(document.get("timestamp"), now_ns),
        trace_id=trace_id,
        span_id=span_id,
        severity=SEVERITY.get(level, 0),
        severity_text=level[:16],
        body=message if isinstance(message, str) else json.dumps(message, default=str),
        attributes={key: _plain(value) for key, value in document.items() if key not in ("level", "message")},
    )


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _trace_of(document: Mapping[str, Any] | None, text: str) -> bytes:
    """A JSON line's trace field (OpenTelemetry's hex, or Powertools' X-Ray id), else an X-Ray id anywhere."""
    if document is not None:
        for key in OTEL_TRACE_KEYS:
            value = document.get(key)
            if isinstance(value, str) and HEX_TRACE_ID.fullmatch(value):
                return bytes.fromhex(value)
        text = str(document.get("xray_trace_id") or text)
    found = XRAY_TRACE_ID.search(text)
    return bytes.fromhex(found.group(1) + found.group(2)) if found else b""


def _time_of(value: object, now_ns: int) -> int:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(datetime.strptime(value, POWERTOOLS_TIME).timestamp() * 1e9)
    return now_ns


def _plain(value: object) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else json.dumps(value, default=str)


def _any(value: str | int | float | bool) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def logs_request(records: list[tuple[Mapping[str, str], LineRecord]]) -> bytes:
    """An ExportLogsServiceRequest of (resource attributes, record) pairs, a ResourceLogs each."""
    message = ExportLogsServiceRequest()
    for resource, record in records:
        attributes = [KeyValue(key=k, value=_any(v)) for k, v in resource.items()]
        log = LogRecord(
            time_unix_nano=record.time_ns,
            observed_time_unix_nano=time.time_ns(),
            severity_number=record.severity,  # type: ignore[arg-type]
            severity_text=record.severity_text,
            body=AnyValue(string_value=record.body),
            attributes=[KeyValue(key=k, value=_any(v)) for k, v in record.attributes.items()],
            trace_id=record.trace_id,
            span_id=record.span_id,
        )
        message.resource_logs.append(
            ResourceLogs(resource=Resource(attributes=attributes), scope_logs=[ScopeLogs(log_records=[log])])
        )
    return bytes(message.SerializeToString())


class LogShipper:
    """Sends records to the collector's ``/v1/logs`` in batches, from a thread of its own."""

    def __init__(self, logs_url: str, max_backlog: int = 10_000, flush_every_s: float = 0.5) -> None:
        self.logs_url = logs_url
        self.dropped = 0
        self._backlog: deque[tuple[Mapping[str, str], LineRecord]] = deque()
        self._max_backlog = max_backlog
        self._flush_every_s = flush_every_s
        self._lock = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lambda-logs", daemon=True)
        self._thread.start()

    def offer(self, resource: Mapping[str, str], record: LineRecord) -> None:
        with self._lock:
            if len(self._backlog) >= self._max_backlog:
                self._backlog.popleft()
                self.dropped += 1
            self._backlog.append((resource, record))

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is waiting, then stop."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                with self._lock:
                    if not self._stopping:
                        self._lock.wait(self._flush_every_s)
                    batch = [self._backlog.popleft() for _ in range(min(len(self._backlog), 500))]
                    stopping = self._stopping and not self._backlog
                if batch:
                    self._send(client, batch)
                if stopping:
                    return

    def _send(self, client: httpx.Client, batch: list[tuple[Mapping[str, str], LineRecord]]) -> None:
        headers = {"Content-Type": "application/x-protobuf"}
        try:
            answered = client.post(self.logs_url, content=logs_request(batch), headers=headers)
        except httpx.HTTPError as exc:
            answered = None
            _logger.debug("log records not sent: %s", exc)
        if answered is None or answered.status_code != 200:
            self.dropped += len(batch)


class OutputPump:
    """Reads one environment's output until it closes: echoes each line, ships those with a trace."""

    def __init__(self, stream: IO[str], resource: Mapping[str, str], shipper: LogShipper | None) -> None:
        self.header: str | None = None  # the trace header of the invocation in flight (or the last)
        self._stream = stream
        self._resource = resource
        self._shipper = shipper
        # Powertools stamps lines to the millisecond: records of one environment keep the order
        # they were written in (each a nanosecond after the last at least).
        self._last_ns = 0
        self._thread = threading.Thread(target=self._run, name="lambda-output", daemon=True)
        self._thread.start()

    def finish(self, timeout_s: float = 2.0) -> None:
        """Wait for the rest of the output (the environment has ended: its pipe runs dry)."""
        self._thread.join(timeout_s)

    def _run(self) -> None:
        # Read until the environment's end, whatever a line holds: a reader that stopped would
        # leave the function blocked on a full pipe.
        with contextlib.suppress(OSError, ValueError):  # the environment was killed mid-line
            for line in iter(lambda: self._stream.readline(LINE_CHARS), ""):
                with contextlib.suppress(OSError, ValueError):  # the demo's own stderr closed
                    sys.stderr.write(line)
                if self._shipper is not None:
                    self._ship(line)
        with contextlib.suppress(OSError):
            self._stream.close()

    def _ship(self, line: str) -> None:
        record = record_of(line, self.header, time.time_ns())
        if record is not None and self._shipper is not None:
            self._last_ns = max(record.time_ns, self._last_ns + 1)
            self._shipper.offer(self._resource, replace(record, time_ns=self._last_ns))
