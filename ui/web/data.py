"""What the pages fetch: plotly figures (as JSON) and panel data, built from the query layer.

Each endpoint takes the same window and filter parameters as the query API, answers 400 with
the reason (and, for a filter, the column) on bad input, and returns figures already built in
Python, so the browser only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import ORJSONResponse as JSONResponse

from collector.api.params import MAX_WINDOW_S, parse_optional_filter, parse_trace_id, parse_window
from collector.engine import Collector
from collector.filters.filter_ast import Expr
from collector.query.analytics import ValueComparison, WindowComparison, compare_values, compare_windows, time_series
from collector.query.critical_path import critical_path, trace_with_consumers
from collector.query.map_view import MapNode, ServiceMap, ThrottleSourceNode
from collector.query.service_map import MapQuery, service_map
from collector.query.trace_view import SpanView
from collector.storage.protocols import SpanReader, Subject, TimeWindow, TraceSummary
from ui.web.charts import Figure, bucket_histogram, log_buckets, series_figures
from ui.web.map_figure import map_figure
from ui.web.map_prefetch import MapPrefetch
from ui.web.trace_figure import waterfall_figure

MAX_TRACES = 1000
DEFAULT_MAX_NODES = 60
Compared = Literal["previous", "function_version", "cold_start"]


@dataclass(frozen=True, slots=True)
class MapPage:
    """The map page's data: the map, its figure, and each node's response-time histogram."""

    map: ServiceMap
    figure: Figure
    histograms: dict[str, Figure]


@dataclass(frozen=True, slots=True)
class TracesPanel:
    traces: tuple[TraceSummary, ...]
    histogram: Figure
    limit: int


@dataclass(frozen=True, slots=True)
class TracePage:
    """A trace's spans (linked consumers' included), the spans on its critical path in the
    order the path reaches them, and its waterfall."""

    trace_id: str
    spans: tuple[SpanView, ...]
    own_span_count: int
    critical_path: tuple[str, ...]
    figure: Figure


@dataclass(frozen=True, slots=True)
class AnalyticsPage:
    figures: dict[str, Figure]
    step_s: float
    comparison: WindowComparison | ValueComparison
    nodes: tuple[MapNode, ...]
    throttle_sources: tuple[ThrottleSourceNode, ...]


def map_body(reader: SpanReader, query: MapQuery) -> MapPage:
    """The map page's data for a query."""
    found = service_map(reader, query)
    title = "response time: select a range to see traces"
    histograms = {n.id: bucket_histogram(n.figures.histogram, title) for n in found.nodes if n.figures is not None}
    return MapPage(found, map_figure(found), histograms)


def map_prefetch(collector: Collector) -> MapPrefetch[MapPage]:
    """What serving the map page starts: the map of the window its boot.js will ask for."""

    def build(start_s: float, end_s: float) -> MapPage:
        window = parse_window(str(start_s), str(end_s))
        return map_body(collector.reader, MapQuery(window, None, DEFAULT_MAX_NODES))

    return MapPrefetch(build)


def data_router(collector: Collector, prefetch: MapPrefetch[MapPage] | None = None) -> APIRouter:
    """The /ui/data endpoints over `collector`'s query layer (`prefetch`: the map page's, if any)."""
    router = APIRouter(prefix="/ui/data")
    reader = collector.reader

    @router.get("/map")
    def map_data(
        start: str | None = None,
        end: str | None = None,
        filter: str | None = None,
        max_nodes: Annotated[int, Query(ge=2, le=1000)] = DEFAULT_MAX_NODES,
    ) -> JSONResponse:
        window = parse_window(start, end)
        prefetched = None
        if prefetch is not None and not filter and max_nodes == DEFAULT_MAX_NODES:
            prefetched = prefetch.take(start, end)
        if prefetched is not None:
            return JSONResponse(prefetched)
        return JSONResponse(map_body(reader, MapQuery(window, parse_optional_filter(filter), max_nodes)))

    @router.get("/traces")
    def traces_data(
        start: str | None = None,
        end: str | None = None,
        filter: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACES)] = 500,
    ) -> JSONResponse:
        window = parse_window(start, end)
        found = tuple(reader.search_traces(window, parse_optional_filter(filter), limit))
        histogram = bucket_histogram(log_buckets([t.trace_duration_ms for t in found]), "trace duration")
        return JSONResponse(TracesPanel(found, histogram, limit))

    @router.get("/trace/{trace_id}")
    def trace_data(trace_id: str) -> JSONResponse:
        key = parse_trace_id(trace_id)
        body = trace_body(reader, key)
        if body is None:
            raise HTTPException(404, f"no trace {trace_id}")
        return JSONResponse(body)

    @router.get("/analytics")
    def analytics_data(
        start: str | None = None,
        end: str | None = None,
        filter: str | None = None,
        node: str | None = None,
        node_type: str | None = None,
        step: Annotated[float | None, Query(gt=0, le=MAX_WINDOW_S)] = None,
        compare: Compared = "previous",
    ) -> JSONResponse:
        window = parse_window(start, end)
        subject = Subject(node or None, node_type or None)
        return JSONResponse(analytics_body(reader, window, parse_optional_filter(filter), subject, step, compare))

    return router


def trace_body(reader: SpanReader, key: bytes) -> TracePage | None:
    """The trace page's data, or None for an unknown trace."""
    stored = trace_with_consumers(reader, key)
    if not stored:
        return None
    # The spans on the path, in the order the path reaches them.
    path = list(dict.fromkeys(segment.span_id for segment in critical_path(stored)))
    spans = tuple(SpanView.of(span) for span in stored)
    own = sum(1 for s in stored if s.trace_id == key.hex())
    return TracePage(key.hex(), spans, own, tuple(path), waterfall_figure(spans, set(path)))


def analytics_body(
    reader: SpanReader,
    window: TimeWindow,
    expr: Expr | None,
    subject: Subject,
    step: float | None,
    compare: Compared,
) -> AnalyticsPage:
    """The analytics page's data: the series, a comparison, and the nodes to pick from."""
    series = time_series(reader, window, expr, subject, step)
    comparison: WindowComparison | ValueComparison
    if compare == "previous":
        length_ns = window.end_ns - window.start_ns
        baseline = parse_window(str((window.start_ns - length_ns) / 1e9), str(window.start_ns / 1e9))
        comparison = compare_windows(reader, window, baseline, expr, subject)
    else:
        comparison = compare_values(reader, window, expr, subject, compare)
    found = service_map(reader, MapQuery(window, expr))
    return AnalyticsPage(series_figures(series.points), series.step_s, comparison, found.nodes, found.throttle_sources)
