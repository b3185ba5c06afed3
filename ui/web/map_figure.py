"""The service map as a plotly figure, built from the query layer's map (collector.query.map_view).

Left to right by call depth (networkx's multipartite layout over the depth the collector
computed); each node is a ring whose arcs show its ok / error (4xx) / fault (5xx) / throttle
(429) shares in X-Ray's colours, sized by traffic, labelled with its name and a tag for its
type; edges carry their rate and p99, async edges dashed. Every string from a span goes
through :func:`inert` first: plotly reads a few HTML tags and entities in text, and escaping
makes a service named ``<img src=x onerror=alert(1)>`` show as those characters.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import networkx as nx

from collector.query.figure_view import RequestFigures
from collector.query.map_view import MapEdge, MapNode, ServiceMap

HEALTH_COLOURS: Final = {"ok": "#2ca02c", "error": "#f0a30a", "fault": "#d62728", "throttle": "#8e44ad"}
NEUTRAL: Final = "#9aa5b1"
TYPE_TAGS: Final = {
    "client": "client",
    "AWS::ApiGateway::Stage": "API Gateway",
    "AWS::Lambda": "Lambda",
    "AWS::Lambda::Function": "λ function",
    "AWS::StepFunctions::StateMachine": "Step Functions",
    "AWS::DynamoDB::Table": "DynamoDB",
    "AWS::S3::Bucket": "S3",
    "AWS::SQS::Queue": "SQS",
    "AWS::Kinesis::Stream": "Kinesis",
    "AWS::Events::EventBus": "EventBridge",
    "AWS::SNS::Topic": "SNS",
    "AWS::CloudFront::Distribution": "CloudFront",
    "remote": "external",
    "database": "database",
    "queue": "queue",
    "service": "service",
    "folded": "folded",
}
RING_POINTS: Final = 32
LABELLED_EDGES: Final = 40
HEALTH_NAMES: Final = {"ok": "ok", "error": "error 4xx", "fault": "fault 5xx", "throttle": "throttle 429"}
MIN_RADIUS: Final = 0.09
MAX_RADIUS: Final = 0.22


def inert(value: object) -> str:
    """Span-borne text for plotly: HTML-escaped, so tags and entities show as characters."""
    return html.escape("" if value is None else str(value), quote=True)


def type_tag(node_type: str) -> str:
    return TYPE_TAGS.get(node_type, node_type.split("::")[-1] if "::" in node_type else node_type)


def positions(nodes: Sequence[MapNode], edges: Sequence[MapEdge]) -> dict[str, tuple[float, float]]:
    """Node id -> (x, y): one column per call depth, nodes spread evenly in their column."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    for node in sorted(nodes, key=lambda n: (n.depth, n.type, n.name)):
        graph.add_node(node.id, depth=node.depth)
    graph.add_edges_from((e.source, e.target) for e in edges)
    if graph.number_of_nodes() == 0:
        return {}
    laid_out = nx.multipartite_layout(graph, subset_key="depth", align="vertical", scale=1.0)
    columns = max(1, len({n.depth for n in nodes}))
    tallest = max(sum(1 for n in nodes if n.depth == d) for d in {n.depth for n in nodes})
    # Unit spacing between columns and rows, whatever the graph's shape.
    width, height = max(columns - 1, 1), max(tallest - 1, 1)
    xs = [float(p[0]) for p in laid_out.values()]  # numpy scalars are not JSON
    ys = [float(p[1]) for p in laid_out.values()]
    x_span = (max(xs) - min(xs)) or 1.0
    y_span = (max(ys) - min(ys)) or 1.0
    return {
        key: ((x - min(xs)) / x_span * width, (y - min(ys)) / y_span * height * 0.8)
        for key, (x, y) in ((k, (float(v[0]), float(v[1]))) for k, v in laid_out.items())
    }


def _radius(requests: int, busiest: int) -> float:
    if busiest <= 0:
        return MIN_RADIUS
    return MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(requests / busiest)


def health_shares(figures: RequestFigures | None) -> list[tuple[str, float]]:
    """(health, share) arcs of a node's ring; a node without figures is one neutral ring."""
    if figures is None or not figures.requests:
        return [("none", 1.0)]
    total = figures.requests
    shares = [
        ("fault", figures.faults / total),
        ("throttle", figures.throttles / total),
        ("error", max(0, figures.errors - figures.throttles) / total),
    ]
    used = sum(share for _, share in shares)
    return [("ok", max(0.0, 1.0 - used)), *[(h, s) for h, s in shares if s > 0]]


Polygon = list[tuple[float, float]]


def _arc_polygon(cx: float, cy: float, r_outer: float, r_inner: float, start: float, end: float) -> Polygon:
    """A ring segment's closed outline, angles in turns (clockwise from the top)."""
    steps = max(2, int(RING_POINTS * (end - start)) + 1)
    angles = [2 * math.pi * (start + (end - start) * i / (steps - 1)) for i in range(steps)]
    outer = [(cx + r_outer * math.sin(a), cy + r_outer * math.cos(a)) for a in angles]
    inner = [(cx + r_inner * math.sin(a), cy + r_inner * math.cos(a)) for a in reversed(angles)]
    return outer + inner + outer[:1]


def _ring_polygons(cx: float, cy: float, radius: float, shares: list[tuple[str, float]]) -> dict[str, list[Polygon]]:
    """Health -> the polygons of one node's ring arcs."""
    polygons: dict[str, list[Polygon]] = {}
    start = 0.0
    for health, share in shares:
        if share <= 0:
            continue
        end = min(1.0, start + share)
        polygons.setdefault(health, []).append(_arc_polygon(cx, cy, radius, radius * 0.62, start, end))
        start = end
    return polygons


def _ring_traces(rings: dict[str, list[Polygon]]) -> list[dict[str, Any]]:
    """One filled trace per health colour, its arcs separated by gaps: a handful of traces draw
    far faster than one layout shape per arc (bench/ui.py)."""
    traces = []
    for health, paths in rings.items():
        xs: list[float | None] = []
        ys: list[float | None] = []
        for polygon in paths:
            xs += [round(x, 4) for x, _ in polygon] + [None]
            ys += [round(y, 4) for _, y in polygon] + [None]
        colour = HEALTH_COLOURS.get(health, NEUTRAL)
        traces.append(
            _scatter(
                x=xs,
                y=ys,
                mode="lines",
                fill="toself",
                fillcolor=colour,
                line={"width": 0, "color": colour},
                hoverinfo="skip",
                name=f"ring {health}",
            )
        )
    return traces


def _between_rings(
    source: tuple[float, float], target: tuple[float, float], source_r: float, target_r: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The part of the line between two node centres that lies outside both rings."""
    (x0, y0), (x1, y1) = source, target
    length = max(math.dist(source, target), 1e-9)
    tail, head = min(source_r / length, 0.45), min(target_r / length, 0.45)
    return (
        (x0 + (x1 - x0) * tail, y0 + (y1 - y0) * tail),
        (x1 - (x1 - x0) * head, y1 - (y1 - y0) * head),
    )


def _edge_label(figures: RequestFigures | None) -> str:
    if figures is None or figures.p99_ms is None:
        return ""
    return f"{figures.requests_per_s:.2f}/s · p99 {figures.p99_ms:,.0f} ms"


def _scatter(**fields: Any) -> dict[str, Any]:
    return {"type": "scatter", "showlegend": False, **fields}


def _edge_traces(
    edges: Sequence[MapEdge], where: Mapping[str, tuple[float, float]], radius: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Sync and async lines, arrowheads as one marker trace, and the edges' click targets."""
    traces = []
    heads_x, heads_y, heads_angle = [], [], []
    for is_async in (False, True):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for edge in (e for e in edges if e.is_async == is_async):
            (x0, y0), (x1, y1) = _between_rings(
                where[edge.source], where[edge.target], radius[edge.source], radius[edge.target]
            )
            xs += [x0, x1, None]
            ys += [y0, y1, None]
            heads_x.append(x1)
            heads_y.append(y1)
            heads_angle.append(math.degrees(math.atan2(x1 - x0, y1 - y0)))  # clockwise from up
        traces.append(
            _scatter(
                x=xs,
                y=ys,
                mode="lines",
                hoverinfo="skip",
                name="async calls" if is_async else "calls",
                line={"color": "#5f6b7a", "width": 1.6, "dash": "6px,5px" if is_async else "solid"},
            )
        )
    traces.append(
        _scatter(
            x=heads_x,
            y=heads_y,
            mode="markers",
            hoverinfo="skip",
            name="arrowheads",
            marker={"symbol": "arrow", "angle": heads_angle, "size": 11, "color": "#5f6b7a"},
        )
    )
    # Labels on every edge clutter a big map: past LABELLED_EDGES they show on hover only.
    labelled = len(edges) <= LABELLED_EDGES
    traces.append(
        _scatter(
            x=[(where[e.source][0] + where[e.target][0]) / 2 for e in edges],
            y=[(where[e.source][1] + where[e.target][1]) / 2 for e in edges],
            mode="markers+text" if labelled else "markers",
            text=[_edge_label(e.figures) for e in edges] if labelled else None,
            textposition="top center",
            textfont={"size": 10, "color": "#3d4752"},
            marker={"size": 9, "color": "#5f6b7a", "symbol": "diamond"},
            customdata=[["edge", e.id] for e in edges],
            hoverinfo="text",
            hovertext=[_edge_label(e.figures) or "no traffic" for e in edges],
            name="edges",
        )
    )
    return traces


def map_figure(service_map: ServiceMap) -> dict[str, Any]:
    """The plotly figure (data and layout, plain JSON) for a service map.

    Built as plain dicts: plotly's graph objects validate every property, which cost ~0.7 s
    for a 50-node, 650-edge map here (bench/ui.py); the output is the same figure JSON.
    """
    nodes, edges = service_map.nodes, service_map.edges
    where = positions(nodes, edges)
    busiest = max([_requests(n) for n in nodes] + [0])
    radius = {n.id: _radius(_requests(n), busiest) for n in nodes}
    rings: dict[str, list[Polygon]] = {}
    for node in nodes:
        cx, cy = where[node.id]
        for health, paths in _ring_polygons(cx, cy, radius[node.id], health_shares(node.figures)).items():
            rings.setdefault(health, []).extend(paths)
    data = _edge_traces(edges, where, radius) + _ring_traces(rings)
    data += _node_traces(nodes, where, radius) + _legend_traces()
    return {"data": data, "layout": _layout(where)}


def _requests(node: MapNode) -> int:
    return node.figures.requests if node.figures is not None else 0


def _node_traces(
    nodes: Sequence[MapNode], where: dict[str, tuple[float, float]], radius: dict[str, float]
) -> list[dict[str, Any]]:
    """The nodes' labels, and the invisible markers that carry their hover text and clicks."""
    data: list[dict[str, Any]] = []
    data.append(
        _scatter(
            x=[where[n.id][0] for n in nodes],
            y=[where[n.id][1] - radius[n.id] * 1.15 - 0.12 for n in nodes],
            mode="text",
            text=[f"{inert(n.name)}<br>[{inert(type_tag(n.type))}]" for n in nodes],
            textposition="bottom center",
            textfont={"size": 11, "color": "#1f2933"},
            hoverinfo="skip",
            name="labels",
        )
    )
    data.append(
        _scatter(
            x=[where[n.id][0] for n in nodes],
            y=[where[n.id][1] for n in nodes],
            mode="markers",
            text=[inert(n.name) for n in nodes],
            marker={
                "size": [radius[n.id] * 160 for n in nodes],
                "color": "rgba(255,255,255,0.01)",
                "line": {"width": 0},
            },
            customdata=[["node", n.id] for n in nodes],
            hovertext=[_node_hover(n) for n in nodes],
            hoverinfo="text",
            name="nodes",
        )
    )
    return data


def _legend_traces() -> list[dict[str, Any]]:
    """A legend for the ring colours."""
    data: list[dict[str, Any]] = []
    for health, colour in HEALTH_COLOURS.items():
        data.append(
            {
                "type": "scatter",
                "x": [None],
                "y": [None],
                "mode": "markers",
                "marker": {"color": colour, "size": 10},
                "name": HEALTH_NAMES[health],
            }
        )
    return data


def _layout(where: dict[str, tuple[float, float]]) -> dict[str, Any]:
    return {
        "uirevision": "map",
        "dragmode": "pan",
        "hovermode": "closest",
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "legend": {"orientation": "h", "y": 1.02, "x": 0},
        "xaxis": {"visible": False, "range": _range([p[0] for p in where.values()])},
        "yaxis": {
            "visible": False,
            "scaleanchor": "x",
            "scaleratio": 1,
            "range": _range([p[1] for p in where.values()]),
        },
    }


def _range(values: list[float]) -> list[float]:
    if not values:
        return [-1.0, 1.0]
    return [min(values) - 0.5, max(values) + 0.5]


def _node_hover(node: MapNode) -> str:
    figures = node.figures
    lines = [f"<b>{inert(node.name)}</b> ({inert(type_tag(node.type))})"]
    if figures is not None:
        lines.append(f"{figures.requests:,} requests · {figures.requests_per_s:.2f}/s")
        lines.append(
            f"error {figures.error_rate:.1%} · fault {figures.fault_rate:.1%} · throttle {figures.throttle_rate:.1%}"
        )
        if figures.p50_ms is not None and figures.p90_ms is not None and figures.p99_ms is not None:
            lines.append(f"p50 {figures.p50_ms:,.1f} · p90 {figures.p90_ms:,.1f} · p99 {figures.p99_ms:,.1f} ms")
        if figures.cold_starts:
            lines.append(f"cold starts {figures.cold_starts:,} ({figures.cold_start_rate:.1%})")
    return "<br>".join(lines)
