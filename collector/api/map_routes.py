"""The query API's routes for the service map and analytics over it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, params

from collector.api.group_routes import Selection
from collector.api.params import MAX_WINDOW_S, BadParameter, parse_window
from collector.engine import Collector
from collector.query.analytics import (
    TimeSeries,
    ValueComparison,
    WindowComparison,
    compare_values,
    compare_windows,
    time_series,
)
from collector.query.map_view import ServiceMap
from collector.query.service_map import MapQuery, service_map
from collector.storage.protocols import CompareField, Subject


def subject_of(
    node: Annotated[str | None, Query(description="a node's name (default: all incoming requests)")] = None,
    node_type: Annotated[str | None, Query(description="the node's type, e.g. AWS::Lambda::Function")] = None,
    caller: Annotated[str | None, Query(description="with node: the edge from this caller")] = None,
    caller_type: str | None = None,
) -> Subject:
    if caller is not None and node is None:
        raise BadParameter("caller needs node: an edge is caller -> node")
    return Subject(node, node_type, caller, caller_type)


def map_routes(collector: Collector, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(dependencies=guarded)

    @router.get("/api/service-map", summary="Nodes, edges, health and throttle sources")
    def service_map_view(
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        max_nodes: Annotated[int, Query(ge=2, le=1000)] = 100,
        group: str | None = None,
        filter: str | None = None,
    ) -> ServiceMap:
        # a group alone: its rollup may serve the window's whole minutes
        query = MapQuery(parse_window(start, end), expr, max_nodes, group if group and not filter else None)
        return service_map(collector.reader, query)

    @router.get("/api/analytics", summary="Time series of requests, rates and percentiles")
    def analytics(
        subject: Annotated[Subject, Depends(subject_of)],
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        step: Annotated[float | None, Query(gt=0, le=MAX_WINDOW_S, description="bucket width in seconds")] = None,
    ) -> TimeSeries:
        window = parse_window(start, end)
        return time_series(collector.reader, window, expr, subject, step)

    @router.get("/api/analytics/compare", summary="Two windows, or two values of a field")
    def compare(
        subject: Annotated[Subject, Depends(subject_of)],
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        baseline_start: str | None = None,
        baseline_end: str | None = None,
        by: Annotated[CompareField | None, Query(description="compare values of a field instead")] = None,
    ) -> WindowComparison | ValueComparison:
        window = parse_window(start, end)
        if by is not None:
            return compare_values(collector.reader, window, expr, subject, by)
        length_s = (window.end_ns - window.start_ns) / 1e9
        default_end = str(window.start_ns / 1e9)
        baseline = parse_window(baseline_start or str(window.start_ns / 1e9 - length_s), baseline_end or default_end)
        return compare_windows(collector.reader, window, baseline, expr, subject)

    return router
