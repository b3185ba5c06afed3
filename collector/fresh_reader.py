"""Reads that see every acknowledged span.

The pipeline acknowledges a batch once it is in the ingest log and folds the log into the
store a row group at a time (up to 30 s later); a reader that asked the store straight away
could miss spans whose requests were already answered. This one has the pipeline fold first (a
no-op when nothing waits), so a trace is there as soon as the request that sent it returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collector.storage.protocols import (
    CostKey,
    CostLine,
    Grouping,
    HopRows,
    ServiceCount,
    SpanReader,
    StoredLog,
    StoredSpan,
    Subject,
    ThrottleSource,
    TimeWindow,
    TraceSummary,
)
from spanlang import filter_ast as ast


class FreshReader:
    """A SpanReader over `reader`, calling `catch_up` before each read."""

    def __init__(self, reader: SpanReader, catch_up: Callable[[], None]) -> None:
        self._reader = reader
        self._catch_up = catch_up

    def services(self, window: TimeWindow) -> list[ServiceCount]:
        self._catch_up()
        return self._reader.services(window)

    def trace_spans(self, trace_id: bytes) -> list[StoredSpan]:
        self._catch_up()
        return self._reader.trace_spans(trace_id)

    def linked_trace_ids(self, trace_id: bytes, limit: int) -> list[bytes]:
        self._catch_up()
        return self._reader.linked_trace_ids(trace_id, limit)

    def trace_logs(self, trace_id: bytes, limit: int) -> list[StoredLog]:
        self._catch_up()
        return self._reader.trace_logs(trace_id, limit)

    def search_traces(self, window: TimeWindow, expr: ast.Expr | None, limit: int) -> list[TraceSummary]:
        self._catch_up()
        return self._reader.search_traces(window, expr, limit)

    def hop_rows(self, window: TimeWindow, expr: ast.Expr | None, max_rows: int, group: str | None = None) -> HopRows:
        self._catch_up()
        return self._reader.hop_rows(window, expr, max_rows, group)

    def throttle_sources(
        self, window: TimeWindow, expr: ast.Expr | None, limit: int, group: str | None = None
    ) -> list[ThrottleSource]:
        self._catch_up()
        return self._reader.throttle_sources(window, expr, limit, group)

    def figure_rows(
        self, window: TimeWindow, expr: ast.Expr | None, subject: Subject, grouping: Grouping
    ) -> list[tuple[Any, ...]]:
        self._catch_up()
        return self._reader.figure_rows(window, expr, subject, grouping)

    def cost_lines(
        self,
        window: TimeWindow,
        expr: ast.Expr | None,
        key: CostKey,
        prices: Mapping[str, float],
        limit: int,
        trace_id: bytes | None = None,
    ) -> list[CostLine]:
        self._catch_up()
        return self._reader.cost_lines(window, expr, key, prices, limit, trace_id)

    def operation_rows(self, window: TimeWindow, bounds_s: Sequence[float]) -> list[tuple[Any, ...]]:
        self._catch_up()
        return self._reader.operation_rows(window, bounds_s)

    def operations(self, window: TimeWindow, service: str, kind: str | None, limit: int) -> list[tuple[str, str]]:
        self._catch_up()
        return self._reader.operations(window, service, kind, limit)
