"""The query API's cost routes: a window's cost by node, function or trace, and one trace's by span."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, params

from collector.api.group_routes import Selection
from collector.api.params import parse_trace_id, parse_window
from collector.api.problems import UNKNOWN_TRACE
from collector.cost.report import MAX_COST_ENTRIES, CostReport, trace_cost, window_cost
from collector.engine import Collector
from collector.storage.protocols import TimeWindow


def cost_routes(collector: Collector, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(dependencies=guarded)

    @router.get("/api/cost", summary="What the window's requests cost, by node, function or trace, costliest first")
    def cost(
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        group_by: Annotated[
            Literal["node", "function", "trace"],
            Query(description="node: map nodes; function: the function (or service) whose code made the charge"),
        ] = "node",
        limit: Annotated[int, Query(ge=1, le=MAX_COST_ENTRIES)] = 100,
    ) -> CostReport:
        return window_cost(collector.reader, parse_window(start, end), expr, group_by, collector.prices, limit)

    @router.get("/api/traces/{trace_id}/cost", summary="What one trace cost, by span", responses=UNKNOWN_TRACE)
    def one_trace_cost(trace_id: str) -> CostReport:
        key = parse_trace_id(trace_id)
        spans = collector.reader.trace_spans(key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        starts = [span.start_ns for span in spans]
        return trace_cost(collector.reader, key, TimeWindow(min(starts), max(starts) + 1), collector.prices)

    return router
