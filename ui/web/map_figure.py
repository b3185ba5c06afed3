"""The service map as a plotly figure, built from the query API's map JSON.

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
import plotly.graph_objects as go

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
    "remote": "external",
    "database": "database",
    "queue": "queue",
    "service": "service",
    "folded": "folded",
}
RING_POINTS: Final = 48
MIN_RADIUS: Final = 0.09
MAX_RADIUS: Final = 0.22


def inert(value: object) -> str:
    """Span-borne text for plotly: HTML-escaped, so tags and entities show as characters."""
    return html.escape("" if value is None else str(value), quote=True)


def type_tag(node_type: str) -> str:
    return TYPE_TAGS.get(node_type, node_type.split("::")[-1] if "::" in node_type else node_type)


def positions(nodes: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Node id -> (x, y): one column per call depth, nodes spread evenly in their column."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    for node in sorted(nodes, key=lambda n: (n["depth"], n["type"], n["name"])):
        graph.add_node(node["id"], depth=node["depth"])
    graph.add_edges_from((e["source"], e["target"]) for e in edges)
    if graph.number_of_nodes() == 0:
        return {}
    laid_out = nx.multipartite_layout(graph, subset_key="depth", align="vertical", scale=1.0)
    columns = max(1, len({n["depth"] for n in nodes}))
    tallest = max(sum(1 for n in nodes if n["depth"] == d) for d in {n["depth"] for n in nodes})
    # Unit spacing between columns and rows, whatever the graph's shape.
    width, height = max(columns - 1, 1), max(tallest - 1, 1)
    xs = [p[0] for p in laid_out.values()]
    ys = [p[1] for p in laid_out.values()]
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


def health_shares(figures: Mapping[str, Any] | None) -> list[tuple[str, float]]:
    """(health, share) arcs of a node's ring; a node without figures is one neutral ring."""
    if not figures or not figures.get("requests"):
        return [("none", 1.0)]
    total = figures["requests"]
    shares = [
        ("fault", figures["faults"] / total),
        ("throttle", figures["throttles"] / total),
        ("error", max(0, figures["errors"] - figures["throttles"]) / total),
    ]
    used = sum(share for _, share in shares)
    return [("ok", max(0.0, 1.0 - used)), *[(h, s) for h, s in shares if s > 0]]


def _arc_path(cx: float, cy: float, r_outer: float, r_inner: float, start: float, end: float) -> str:
    """An SVG path (lines only: plotly shapes have no arcs) for a ring segment, angles in turns."""
    steps = max(2, int(RING_POINTS * (end - start)) + 1)
    angles = [2 * math.pi * (start + (end - start) * i / (steps - 1)) for i in range(steps)]
    outer = [(cx + r_outer * math.sin(a), cy + r_outer * math.cos(a)) for a in angles]
    inner = [(cx + r_inner * math.sin(a), cy + r_inner * math.cos(a)) for a in reversed(angles)]
    points = outer + inner
    return "M " + " L ".join(f"{x:.4f},{y:.4f}" for x, y in points) + " Z"


def _ring_shapes(cx: float, cy: float, radius: float, shares: list[tuple[str, float]]) -> list[dict[str, Any]]:
    shapes = []
    start = 0.0
    for health, share in shares:
        if share <= 0:
            continue
        end = min(1.0, start + share)
        colour = HEALTH_COLOURS.get(health, NEUTRAL)
        shapes.append(
            {
                "type": "path",
                "path": _arc_path(cx, cy, radius, radius * 0.62, start, end if end - start < 1 else 0.9999),
                "fillcolor": colour,
                "line": {"width": 0},
                "layer": "below",
            }
        )
        start = end
    return shapes


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


def _arrowhead(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    """A short arrow at the callee's end: its shaft in pixels, so it never hides a dashed line."""
    length = max(math.dist((x0, y0), (x1, y1)), 1e-9)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    return {
        "x": x1,
        "y": y1,
        "ax": -ux * 14,
        "ay": uy * 14,
        "xref": "x",
        "yref": "y",
        "text": "",
        "showarrow": True,
        "arrowhead": 2,
        "arrowsize": 1.2,
        "arrowwidth": 1.4,
        "arrowcolor": "#5f6b7a",
    }


def _edge_label(figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return ""
    p99 = figures.get("p99_ms")
    return f"{figures['requests_per_s']:.2f}/s · p99 {p99:,.0f} ms" if p99 is not None else ""


def map_figure(body: Mapping[str, Any]) -> go.Figure:
    """The plotly figure for a service-map JSON body."""
    nodes, edges = body["nodes"], body["edges"]
    where = positions(nodes, edges)
    busiest = max([(n["figures"] or {}).get("requests", 0) for n in nodes] + [0])
    radius = {n["id"]: _radius((n["figures"] or {}).get("requests", 0), busiest) for n in nodes}
    figure = go.Figure()
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for is_async in (False, True):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for edge in (e for e in edges if bool(e["async"]) == is_async):
            (x0, y0), (x1, y1) = _between_rings(
                where[edge["source"]], where[edge["target"]], radius[edge["source"]], radius[edge["target"]]
            )
            xs += [x0, x1, None]
            ys += [y0, y1, None]
            annotations.append(_arrowhead(x0, y0, x1, y1))
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                hoverinfo="skip",
                showlegend=False,
                line={"color": "#5f6b7a", "width": 1.6, "dash": "6px,5px" if is_async else "solid"},
                name="async calls" if is_async else "calls",
            )
        )
    # Edge labels double as click targets for the edge panel.
    figure.add_trace(
        go.Scatter(
            x=[(where[e["source"]][0] + where[e["target"]][0]) / 2 for e in edges],
            y=[(where[e["source"]][1] + where[e["target"]][1]) / 2 for e in edges],
            mode="markers+text",
            text=[_edge_label(e["figures"]) for e in edges],
            textposition="top center",
            textfont={"size": 10, "color": "#3d4752"},
            marker={"size": 9, "color": "#5f6b7a", "symbol": "diamond"},
            customdata=[["edge", e["id"]] for e in edges],
            hoverinfo="text",
            hovertext=[_edge_label(e["figures"]) or "no traffic" for e in edges],
            showlegend=False,
            name="edges",
        )
    )
    for node in nodes:
        cx, cy = where[node["id"]]
        shapes += _ring_shapes(cx, cy, radius[node["id"]], health_shares(node["figures"]))
    figure.add_trace(
        go.Scatter(
            x=[where[n["id"]][0] for n in nodes],
            y=[where[n["id"]][1] for n in nodes],
            mode="markers+text",
            text=[f"{inert(n['name'])}<br>[{inert(type_tag(n['type']))}]" for n in nodes],
            textposition="bottom center",
            textfont={"size": 11, "color": "#1f2933"},
            marker={
                "size": [radius[n["id"]] * 160 for n in nodes],
                "color": "rgba(255,255,255,0.01)",
                "line": {"width": 0},
            },
            customdata=[["node", n["id"]] for n in nodes],
            hovertext=[_node_hover(n) for n in nodes],
            hoverinfo="text",
            showlegend=False,
            name="nodes",
        )
    )
    for health, colour in HEALTH_COLOURS.items():  # a legend for the ring colours
        figure.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"color": colour, "size": 10},
                name={"ok": "ok", "error": "error 4xx", "fault": "fault 5xx", "throttle": "throttle 429"}[health],
            )
        )
    figure.update_layout(
        shapes=shapes,
        annotations=annotations,
        uirevision="map",
        dragmode="pan",
        hovermode="closest",
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        legend={"orientation": "h", "y": 1.02, "x": 0},
        xaxis={"visible": False, "range": _range([p[0] for p in where.values()])},
        yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1, "range": _range([p[1] for p in where.values()])},
    )
    return figure


def _range(values: list[float]) -> list[float]:
    if not values:
        return [-1.0, 1.0]
    return [min(values) - 0.5, max(values) + 0.5]


def _node_hover(node: Mapping[str, Any]) -> str:
    figures = node["figures"]
    lines = [f"<b>{inert(node['name'])}</b> ({inert(type_tag(node['type']))})"]
    if figures:
        lines.append(f"{figures['requests']:,} requests · {figures['requests_per_s']:.2f}/s")
        lines.append(
            f"error {figures['error_rate']:.1%} · fault {figures['fault_rate']:.1%} · "
            f"throttle {figures['throttle_rate']:.1%}"
        )
        if figures["p99_ms"] is not None:
            lines.append(
                f"p50 {figures['p50_ms']:,.1f} · p90 {figures['p90_ms']:,.1f} · p99 {figures['p99_ms']:,.1f} ms"
            )
        if figures["cold_starts"]:
            lines.append(f"cold starts {figures['cold_starts']:,} ({figures['cold_start_rate']:.1%})")
    return "<br>".join(lines)
