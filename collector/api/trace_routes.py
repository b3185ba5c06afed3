"""The query API's routes for services and traces: list, search, one trace, its critical path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, params

from collector.api.params import parse_optional_filter, parse_trace_id, parse_window
from collector.api.span_json import span_json
from collector.engine import Collector
from collector.query.critical_path import critical_path_json, trace_with_consumers

MAX_TRACES = 1000
MAX_SERVICES = 10_000
FILTER_HELP = 'an X-Ray filter expression, e.g. service("orders") { fault } AND annotation.customer = "c1"'


def trace_routes(collector: Collector, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(dependencies=guarded)

    @router.get("/api/services", summary="Services seen in the window, with span counts")
    def services(
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_SERVICES, description="most services listed, busiest first")] = 1000,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        found = collector.reader.services(window)
        shown = found if len(found) <= limit else sorted(found, key=lambda s: (-s.spans, s.name))[:limit]
        listed = sorted(shown, key=lambda s: s.name)
        return {"services": [asdict(s) for s in listed], "total": len(found), "truncated": len(found) > limit}

    @router.get("/api/traces", summary="Traces in the window matching a filter, newest first")
    def traces(
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACES)] = 100,
        filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        found = collector.reader.search_traces(window, parse_optional_filter(filter), limit)
        return {"traces": [asdict(t) for t in found], "start_ns": window.start_ns, "end_ns": window.end_ns}

    @router.get("/api/traces/{trace_id}", summary="Every span of one trace")
    def trace(trace_id: str) -> dict[str, Any]:
        key = parse_trace_id(trace_id)
        spans = collector.reader.trace_spans(key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return {"trace_id": key.hex(), "spans": [span_json(span) for span in spans]}

    @router.get("/api/traces/{trace_id}/critical-path", summary="What set the trace's duration")
    def trace_critical_path(trace_id: str) -> dict[str, Any]:
        key = parse_trace_id(trace_id)
        spans = trace_with_consumers(collector.reader, key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return {"trace_id": key.hex(), **critical_path_json(spans)}

    return router
