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
    trace_duration_ms: float


@dataclass(frozen=True)
class Statement:
    """A read-only query built by collector.query: SQL text of fixed fragments and bound values."""

    text: str
    params: tuple[Any, ...] = ()


class SpanWriter(Protocol):
    """Stores batches; returns how many new spans were stored (duplicates are skipped)."""

    def write(self, batches: Sequence[SpanBatch]) -> int: ...


class TraceReader(Protocol):
    """Reads traces and services for the query API."""

    def services(self, window: TimeWindow) -> list[ServiceCount]: ...

    def trace(self, trace_id: bytes) -> list[dict[str, Any]]: ...


class StatementReader(Protocol):
    """Runs the query layer's statements (service map, filter search, analytics)."""

    def fetch(self, statement: Statement) -> list[tuple[Any, ...]]: ...


class StoreMaintenance(Protocol):
    """Housekeeping the engine schedules."""

    def delete_older_than(self, cutoff_ns: int) -> int: ...

    def link_new_spans(self, now_ns: int | None = None) -> int: ...

    def expire_pending_calls(self, waited_since_ns: int) -> None: ...

    def roll_up_calls(self, settled_before_ns: int) -> None: ...

    def file_size_bytes(self) -> int: ...

    def close(self) -> None: ...
