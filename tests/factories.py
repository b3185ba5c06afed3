"""Test data builders shared by the collector's tests."""

from __future__ import annotations

from typing import Any

from collector.model import SpanRow

REQUIRED_DEFAULTS: dict[str, Any] = {
    "service": "svc",
    "name": "op",
    "kind": "INTERNAL",
    "start_ns": 1,
    "duration_ns": 1,
    "status_code": 0,
    "error": False,
    "fault": False,
    "throttle": False,
    "in_progress": False,
    "source": "test",
}


def span_row(**fields: Any) -> SpanRow:
    """A SpanRow from the given fields; required ones get defaults, the rest are NULL."""
    values = {**REQUIRED_DEFAULTS, **fields}
    return SpanRow(**{name: values.get(name) for name in SpanRow._fields})
