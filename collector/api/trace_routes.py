"""The query API's routes for services and traces: list, search, one trace, its critical path, its logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, params

from collector.api.group_routes import Selection
from collector.api.params import parse_trace_id, parse_window
from collector.api.problems import UNKNOWN_TRACE
from collector.engine import Collector
from collector.query.critical_path import CriticalPath, critical_path_of, trace_with_consumers
from collector.query.trace_logs import MAX_TRACE_LOGS, TraceLogs
from collector.query.trace_view import ServicesPage, TracesPage, TraceView

MAX_TRACES = 1000
MAX_SERVICES = 10_000


def trace_routes(collector: Collector, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(dependencies=guarded)

    @router.get("/api/services", summary="Services seen in the window, with span counts")
    def services(
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_SERVICES, description="most services listed, busiest first")] = 1000,
    ) -> ServicesPage:
        return ServicesPage.of(collector.reader.services(parse_window(start, end)), limit)

    @router.get("/api/traces", summary="Traces in the window matching a filter or group, newest first")
    def traces(
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACES)] = 100,
    ) -> TracesPage:
        window = parse_window(start, end)
        return TracesPage.of(collector.reader.search_traces(window, expr, limit), window)

    @router.get("/api/traces/{trace_id}", summary="Every span of one trace", responses=UNKNOWN_TRACE)
    def trace(trace_id: str) -> TraceView:
        key = parse_trace_id(trace_id)
        spans = collector.reader.trace_spans(key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return TraceView.of(key, spans)

    @router.get(
        "/api/traces/{trace_id}/critical-path", summary="What set the trace's duration", responses=UNKNOWN_TRACE
    )
    def trace_critical_path(trace_id: str) -> CriticalPath:
        key = parse_trace_id(trace_id)
        spans = trace_with_consumers(collector.reader, key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return critical_path_of(key, spans)

    @router.get(
        "/api/traces/{trace_id}/logs",
        summary="The trace's log records, by time, with their spans",
        responses=UNKNOWN_TRACE,
    )
    def trace_logs(
        trace_id: str,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACE_LOGS, description="most records, oldest first")] = 1000,
    ) -> TraceLogs:
        key = parse_trace_id(trace_id)
        logs = collector.reader.trace_logs(key, limit + 1)
        if not logs and not collector.reader.trace_spans(key):
            raise HTTPException(404, f"no trace {trace_id}")
        return TraceLogs.of(key, logs, limit)

    return router
