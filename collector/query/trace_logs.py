"""A trace's log records as the API and the trace view show them: by time, under their span."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.storage.protocols import StoredLog

MAX_TRACE_LOGS = 5000
# OpenTelemetry's severity ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.
SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def severity_name(number: int) -> str | None:
    """The severity's range name (None when unspecified)."""
    return SEVERITY_NAMES[(number - 1) // 4] if 1 <= number <= 24 else None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One record: its time, span (hex; None when written outside any span), severity, body."""

    time_ns: int
    span_id: str | None
    service: str
    severity: str | None  # as written (severity_text), else the number's range name
    severity_number: int
    body: str | None
    attributes: dict[str, Any]

    @classmethod
    def of(cls, log: StoredLog) -> LogLine:
        return cls(
            time_ns=log.time_ns,
            span_id=log.span_id,
            service=log.service,
            severity=log.severity_text or severity_name(log.severity_number),
            severity_number=log.severity_number,
            body=log.body,
            attributes=log.attributes,
        )


@dataclass(frozen=True, slots=True)
class TraceLogs:
    """The trace's records in time order; `truncated` when there were more than `limit`."""

    trace_id: str
    logs: tuple[LogLine, ...]
    truncated: bool

    @classmethod
    def of(cls, trace_id: bytes, logs: Sequence[StoredLog], limit: int) -> TraceLogs:
        return cls(trace_id.hex(), tuple(LogLine.of(log) for log in logs[:limit]), len(logs) > limit)
