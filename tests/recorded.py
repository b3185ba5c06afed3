"""What tests read from spans the OpenTelemetry SDK recorded, typed as a test expects them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan


def attributes_of(item: ReadableSpan | Event) -> Mapping[str, Any]:
    """A recorded span's or event's attributes (the SDK types them optional; recorded ones have them)."""
    assert item.attributes is not None, f"{item.name} has no attributes"
    return item.attributes


def times_of(span: ReadableSpan) -> tuple[int, int]:
    """A finished span's start and end, ns."""
    assert span.start_time is not None and span.end_time is not None, f"{span.name} has not ended"
    return span.start_time, span.end_time
