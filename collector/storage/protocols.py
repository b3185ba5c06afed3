"""The storage plug points: a one-method writer and narrow, purpose-split readers.

Every store implementation passes the same contract suite (tests/contract/). Values crossing
this boundary are plain frozen dataclasses or dicts of JSON-able values, never driver objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from collector.model import SpanBatch


class StoreUnavailable(RuntimeError):
    """The store cannot take or give data right now (disk full, file locked, closed)."""


@dataclass(frozen=True)
class TimeWindow:
    """A half-open interval of span start times, ns since the epoch."""

    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class ServiceCount:
    name: str
    spans: int


@dataclass(frozen=True)
class TraceSummary:
    """One row of a trace search."""

    trace_id: str
    root_service: str
    root_name: str
    start_ns: int
    duration_ms: float
    http_status: int | None
    error: bool
    fault: bool
    throttle: bool
    cold_start: bool
    span_count: int
    services: tuple[str, ...]


class SpanWriter(Protocol):
    """Stores batches; returns how many new spans were stored (duplicates are skipped)."""

    def write(self, batches: Sequence[SpanBatch]) -> int: ...


class TraceReader(Protocol):
    """Reads traces and services for the query API."""

    def services(self, window: TimeWindow) -> list[ServiceCount]: ...

    def search_traces(self, window: TimeWindow, *, service: str | None, limit: int) -> list[TraceSummary]: ...

    def trace(self, trace_id: bytes) -> list[dict[str, Any]]: ...


class StoreMaintenance(Protocol):
    """Housekeeping the engine schedules."""

    def delete_older_than(self, cutoff_ns: int) -> int: ...

    def file_size_bytes(self) -> int: ...

    def close(self) -> None: ...
