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

from collector.api.group_routes import Selection
from collector.api.insight_routes import MAX_INSIGHTS
from collector.api.params import MAX_WINDOW_S, parse_trace_id, parse_window
from collector.cost.prices import PriceSheet
from collector.cost.report import CostReport, trace_cost, window_cost
from collector.engine import Collector
from collector.insights.insight import Insight
from collector.query.analytics import ValueComparison, WindowComparison, compare_values, compare_windows, time_series
from collector.query.cold_starts import cold_start_series
from collector.query.critical_path import critical_path, trace_with_consumers
from collector.query.map_view import MapNode, ServiceMap, ThrottleSourceNode
from collector.query.service_map import MapQuery, service_map
from collector.query.trace_compare import compare_traces
from collector.query.trace_keeping import KeptPart, kept_parts
from collector.query.trace_logs import MAX_TRACE_LOGS, TraceLogs
from collector.query.trace_view import SpanView
from collector.storage.protocols import InsightScope, SpanReader, Subject, TimeWindow, TraceSummary
from spanlang.filter_ast import Expr
from ui.web.charts import Figure, bucket_histogram, cold_start_figure, log_buckets, series_figures
from ui.web.compact_map import View, drawn
from ui.web.drawn_map import DrawnMap
from ui.web.insight_figure import timeline_figure
from ui.web.layout_memory import LayoutMemory
from ui.web.map_canvas import canvas
from ui.web.map_figure import map_figure, node_label
from ui.web.map_focus import focus_on
from ui.web.map_layout import LayoutNode, layered
from ui.web.map_prefetch import MapPrefetch
from ui.web.trace_figure import waterfall_figure

MAX_TRACES = 1000
DEFAULT_MAX_NODES = 60
Compared = Literal["previous", "function_version", "cold_start"]


@dataclass(frozen=True, slots=True)
class MapPage:
    """The map page's data: the map, its figure, each node's response-time histogram, and, in
    the compact view, the function node drawn inside each Lambda service node (by their ids)."""

    map: ServiceMap
    figure: Figure
    histograms: dict[str, Figure]
    view: View
    compact: dict[str, str]
    focus: str | None


@dataclass(frozen=True, slots=True)
class MapDrawing:
    """How the map page draws a map: the view, the node in focus, and the layouts it keeps."""

    view: View = "compact"
    focus: str | None = None
    layouts: LayoutMemory | None = None
    view_key: tuple[str, ...] = ()


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
    kept: tuple[KeptPart, ...]  # how each service's part was kept: head sampling or tail-keep
    cost: CostReport  # what the trace cost, by span
    logs: TraceLogs  # its log records by time, each with its span


@dataclass(frozen=True, slots=True)
class InsightsPanel:
    insights: tuple[Insight, ...]
    figure: Figure


@dataclass(frozen=True, slots=True)
class AnalyticsPage:
    figures: dict[str, Figure]
    step_s: float
    comparison: WindowComparison | ValueComparison
    nodes: tuple[MapNode, ...]
    throttle_sources: tuple[ThrottleSourceNode, ...]
    cold_nodes: tuple[MapNode, ...]  # the subject's node and those downstream of it that cold started


def map_body(reader: SpanReader, query: MapQuery, drawing: MapDrawing | None = None) -> MapPage:
    """The map page's data for a query, drawn as `drawing` says (compact, no focus, a fresh layout)."""
    how = drawing or MapDrawing()
    found = service_map(reader, query)
    title = "response time: select a range to see traces"
    histograms = {n.id: bucket_histogram(n.figures.histogram, title) for n in found.nodes if n.figures is not None}
    nodes, edges = drawn(found.nodes, found.edges, how.view)
    layout_nodes = [LayoutNode(n.id, f"{n.node.type}\x00{n.node.name}", n.node.type == "client") for n in nodes]
    links = [(e.source, e.target) for e in edges]
    labels = {n.id: node_label(n) for n in nodes}
    if how.layouts is not None:
        layout, sizes = how.layouts.place((how.view, *how.view_key), layout_nodes, links, labels)
    else:
        layout = layered(layout_nodes, links)
        sizes = canvas(layout, labels)
    focus = how.focus if how.focus in {n.id for n in nodes} else None
    lit = focus_on(focus, edges) if focus is not None else None
    figure = map_figure(DrawnMap(nodes, edges, layout, sizes, lit.nodes if lit else None, lit.edges if lit else None))
    compact = {n.node.id: n.function.id for n in nodes if n.function is not None}
    return MapPage(found, figure, histograms, how.view, compact, focus)


def map_prefetch(collector: Collector, layouts: LayoutMemory) -> MapPrefetch[MapPage]:
    """What serving the map page starts: the map of the window its boot.js will ask for."""

    def build(start_s: float, end_s: float) -> MapPage:
        window = parse_window(str(start_s), str(end_s))
        drawing = MapDrawing(layouts=layouts, view_key=_view_key(None, None, DEFAULT_MAX_NODES))
        return map_body(collector.reader, MapQuery(window, None, DEFAULT_MAX_NODES), drawing)

    return MapPrefetch(build)


def _view_key(filter_text: str | None, group: str | None, max_nodes: int) -> tuple[str, ...]:
    return (filter_text or "", group or "", str(max_nodes))


def data_router(
    collector: Collector, prefetch: MapPrefetch[MapPage] | None = None, layouts: LayoutMemory | None = None
) -> APIRouter:
    """The /ui/data endpoints over `collector`'s query layer (`prefetch`: the map page's, if any;
    `layouts`: where each view of the map keeps its nodes across refreshes)."""
    router = APIRouter(prefix="/ui/data")
    reader = collector.reader
    memory = layouts or LayoutMemory()

    _add_map_route(router, reader, prefetch, memory)
    _add_cost_route(router, collector)
    _add_insights_route(router, collector)
    _add_compare_route(router, reader)

    @router.get("/traces")
    def traces_data(
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACES)] = 500,
    ) -> JSONResponse:
        window = parse_window(start, end)
        found = tuple(reader.search_traces(window, expr, limit))
        histogram = bucket_histogram(log_buckets([t.trace_duration_ms for t in found]), "trace duration")
        return JSONResponse(TracesPanel(found, histogram, limit))

    @router.get("/trace/{trace_id}")
    def trace_data(trace_id: str) -> JSONResponse:
        key = parse_trace_id(trace_id)
        body = trace_body(reader, key, collector.prices)
        if body is None:
            raise HTTPException(404, f"no trace {trace_id}")
        return JSONResponse(body)

    @router.get("/analytics")
    def analytics_data(
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        node: str | None = None,
        node_type: str | None = None,
        step: Annotated[float | None, Query(gt=0, le=MAX_WINDOW_S)] = None,
        compare: Compared = "previous",
    ) -> JSONResponse:
        window = parse_window(start, end)
        subject = Subject(node or None, node_type or None)
        return JSONResponse(analytics_body(reader, window, expr, subject, step, compare))

    return router


def _add_map_route(
    router: APIRouter, reader: SpanReader, prefetch: MapPrefetch[MapPage] | None, memory: LayoutMemory
) -> None:
    @router.get("/map")
    def map_data(
        expr: Selection,
        start: str | None = None,
        end: str | None = None,
        filter: str | None = None,
        group: str | None = None,
        max_nodes: Annotated[int, Query(ge=2, le=1000)] = DEFAULT_MAX_NODES,
        view: View = "compact",
        focus: Annotated[str | None, Query(max_length=16, pattern="^[0-9a-f]*$")] = None,
    ) -> JSONResponse:
        window = parse_window(start, end)
        prefetched = None
        plain = not filter and not group and max_nodes == DEFAULT_MAX_NODES and view == "compact" and not focus
        if prefetch is not None and plain:
            prefetched = prefetch.take(start, end)
        if prefetched is not None:
            return JSONResponse(prefetched)
        drawing = MapDrawing(view, focus or None, memory, _view_key(filter, group, max_nodes))
        query = MapQuery(window, expr, max_nodes, group if group and not filter else None)
        return JSONResponse(map_body(reader, query, drawing))


def _add_cost_route(router: APIRouter, collector: Collector) -> None:
    @router.get("/cost")
    def cost_data(expr: Selection, start: str | None = None, end: str | None = None) -> JSONResponse:
        """The map's nodes' cost over its window (a node panel shows its own)."""
        report = window_cost(collector.reader, parse_window(start, end), expr, "node", collector.prices)
        return JSONResponse(report)


def _add_insights_route(router: APIRouter, collector: Collector) -> None:
    @router.get("/insights")
    def insights_data(
        start: str | None = None,
        end: str | None = None,
        group: Annotated[str | None, Query(max_length=64)] = None,
    ) -> JSONResponse:
        window = parse_window(start, end)
        found = collector.insights.insights(window.start_ns, window.end_ns, MAX_INSIGHTS, InsightScope(group or None))
        return JSONResponse(InsightsPanel(tuple(found), timeline_figure(found, window.end_ns)))


def _add_compare_route(router: APIRouter, reader: SpanReader) -> None:
    @router.get("/compare")
    def compare_data(a: str, b: str) -> JSONResponse:
        keys = parse_trace_id(a), parse_trace_id(b)
        spans = [trace_with_consumers(reader, key) for key in keys]
        for key, found in zip(keys, spans, strict=True):
            if not found:
                raise HTTPException(404, f"no trace {key.hex()}")
        return JSONResponse(compare_traces(*spans))


def trace_body(reader: SpanReader, key: bytes, prices: PriceSheet) -> TracePage | None:
    """The trace page's data, or None for an unknown trace."""
    stored = trace_with_consumers(reader, key)
    if not stored:
        return None
    starts = [span.start_ns for span in stored if span.trace_id == key.hex()] or [0]
    cost = trace_cost(reader, key, TimeWindow(min(starts), max(starts) + 1), prices)
    # The spans on the path, in the order the path reaches them.
    path = list(dict.fromkeys(segment.span_id for segment in critical_path(stored)))
    spans = tuple(SpanView.of(span) for span in stored)
    own = sum(1 for s in stored if s.trace_id == key.hex())
    figure = waterfall_figure(spans, set(path))
    logs = TraceLogs.of(key, reader.trace_logs(key, MAX_TRACE_LOGS + 1), MAX_TRACE_LOGS)
    return TracePage(key.hex(), spans, own, tuple(path), figure, kept_parts(spans), cost, logs)


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
    cold = cold_start_series(reader, window, expr, subject, found, series.step_s)
    figures = {**series_figures(series.points), "cold": cold_start_figure(cold)}
    return AnalyticsPage(figures, series.step_s, comparison, found.nodes, found.throttle_sources, cold.nodes)
