"""The service map as a plotly figure, drawn from a layout (ui.web.map_layout) in pixels.

Each node is a ring whose arcs show its ok / error (4xx) / fault (5xx) / throttle (429) shares
in X-Ray's colours, its width by traffic, labelled with its name and its type; a compact node
(a Lambda's service and function as one, ui.web.compact_map) has the function's ring inside the
service's. Edges run through their bends, async ones dashed, arrowheads at the callee. In focus
mode everything not on a path through the focused node is drawn faint. One data unit is one
pixel, the y axis pointing down (ui.web.map_canvas).

Every string from a span goes through :func:`inert` first: plotly reads a few HTML tags and
entities in text, and escaping makes a service named ``<img src=x onerror=alert(1)>`` show as
those characters.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any, Final

from collector.query.figure_view import RequestFigures
from collector.query.map_view import MapNode
from ui.web.compact_map import DrawnNode
from ui.web.drawn_map import DrawnMap, colour, scatter
from ui.web.map_canvas import (
    FONT_PX,
    LABEL_GAP_PX,
    RING_MAX_PX,
    RING_MIN_PX,
    TYPE_FONT_PX,
    Canvas,
    Label,
    label,
)
from ui.web.map_edges import edge_traces

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
COMPACT_TAG: Final = "Lambda + λ function"
RING_POINTS: Final = 32
HEALTH_NAMES: Final = {"ok": "ok", "error": "error 4xx", "fault": "fault 5xx", "throttle": "throttle 429"}
INNER_SHARE: Final = 0.62  # a ring's hole, as a share of its radius
FUNCTION_RING: Final = (0.56, 0.34)  # a compact node's inner ring, outer and inner radius as shares


def inert(value: object) -> str:
    """Span-borne text for plotly: HTML-escaped, so tags and entities show as characters."""
    return html.escape("" if value is None else str(value), quote=True)


def type_tag(node_type: str) -> str:
    return TYPE_TAGS.get(node_type, node_type.split("::")[-1] if "::" in node_type else node_type)


def node_label(node: DrawnNode) -> Label:
    return label(node.node.name, COMPACT_TAG if node.function is not None else type_tag(node.node.type))


def _radius(requests: int, busiest: int) -> float:
    if busiest <= 0:
        return RING_MIN_PX
    return RING_MIN_PX + (RING_MAX_PX - RING_MIN_PX) * math.sqrt(requests / busiest)


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
RingKey = tuple[str, bool]  # (health, faint)


def _arc_polygon(cx: float, cy: float, r_outer: float, r_inner: float, start: float, end: float) -> Polygon:
    """A ring segment's closed outline, angles in turns (clockwise from the top, y pointing down)."""
    steps = max(2, int(RING_POINTS * (end - start)) + 1)
    angles = [2 * math.pi * (start + (end - start) * i / (steps - 1)) for i in range(steps)]
    outer = [(cx + r_outer * math.sin(a), cy - r_outer * math.cos(a)) for a in angles]
    inner = [(cx + r_inner * math.sin(a), cy - r_inner * math.cos(a)) for a in reversed(angles)]
    return outer + inner + outer[:1]


def _ring_polygons(
    centre: tuple[float, float], outer: float, inner: float, shares: list[tuple[str, float]]
) -> dict[str, list[Polygon]]:
    """Health -> the polygons of one ring's arcs."""
    polygons: dict[str, list[Polygon]] = {}
    start = 0.0
    for health, share in shares:
        if share <= 0:
            continue
        end = min(1.0, start + share)
        polygons.setdefault(health, []).append(_arc_polygon(*centre, outer, inner, start, end))
        start = end
    return polygons


def _ring_traces(rings: Mapping[RingKey, list[Polygon]]) -> list[dict[str, Any]]:
    """One filled trace per health colour (and faintness), its arcs separated by gaps: a handful
    of traces draw far faster than one layout shape per arc (bench/ui.py)."""
    traces = []
    for (health, faint), paths in sorted(rings.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for polygon in paths:
            xs += [round(x, 2) for x, _ in polygon] + [None]
            ys += [round(y, 2) for _, y in polygon] + [None]
        fill = colour(HEALTH_COLOURS.get(health, NEUTRAL), faint)
        traces.append(
            scatter(
                x=xs,
                y=ys,
                mode="lines",
                fill="toself",
                fillcolor=fill,
                line={"width": 0, "color": fill},
                hoverinfo="skip",
                name=f"ring {health}{' faint' if faint else ''}",
            )
        )
    return traces


def map_figure(drawn: DrawnMap) -> dict[str, Any]:
    """The plotly figure (data and layout, plain JSON) for a drawn map.

    Built as plain dicts: plotly's graph objects validate every property, which cost ~0.7 s
    for a 50-node, 650-edge map here (bench/ui.py); the output is the same figure JSON.
    """
    labels = {n.id: node_label(n) for n in drawn.nodes}
    where = drawn.canvas
    busiest = max([_requests(n) for n in drawn.nodes] + [0])
    radius = {n.id: _radius(_requests(n), busiest) for n in drawn.nodes}
    rings: dict[RingKey, list[Polygon]] = {}
    for node in drawn.nodes:
        centre, r, faint = where.at(drawn.layout.slots[node.id]), radius[node.id], drawn.faint_node(node.id)
        for health, paths in _ring_polygons(centre, r, r * INNER_SHARE, health_shares(node.node.figures)).items():
            rings.setdefault((health, faint), []).extend(paths)
        if node.function is not None:
            outer, inner = (share * r for share in FUNCTION_RING)
            for health, paths in _ring_polygons(centre, outer, inner, health_shares(node.function.figures)).items():
                rings.setdefault((health, faint), []).extend(paths)
    data = edge_traces(drawn, radius) + _ring_traces(rings)
    data += _node_traces(drawn, where, radius, labels) + _legend_traces()
    return {"data": data, "layout": _layout(where)}


def _requests(node: DrawnNode) -> int:
    return node.node.figures.requests if node.node.figures is not None else 0


def _label_text(drawn_label: Label, faint: bool) -> str:
    colour = "#b8c0c9" if faint else "#6b7785"
    lines = "<br>".join(inert(line) for line in drawn_label.lines)
    return f"{lines}<br><span style='font-size:{TYPE_FONT_PX}px;color:{colour}'>{inert(drawn_label.type_tag)}</span>"


def _node_traces(
    drawn: DrawnMap, where: Canvas, radius: Mapping[str, float], labels: Mapping[str, Label]
) -> list[dict[str, Any]]:
    """The nodes' labels (faint ones apart), and the invisible markers that carry their hover
    text and clicks."""
    data: list[dict[str, Any]] = []
    for faint in (False, True):
        chosen = [n for n in drawn.nodes if drawn.faint_node(n.id) == faint]
        data.append(
            scatter(
                x=[where.at(drawn.layout.slots[n.id])[0] for n in chosen],
                y=[where.at(drawn.layout.slots[n.id])[1] + RING_MAX_PX + LABEL_GAP_PX for n in chosen],
                mode="text",
                text=[_label_text(labels[n.id], faint) for n in chosen],
                textposition="bottom center",
                textfont={"size": FONT_PX, "color": "#c5ccd3" if faint else "#1f2933"},
                hoverinfo="skip",
                name="labels faint" if faint else "labels",
            )
        )
    data.append(
        scatter(
            x=[where.at(drawn.layout.slots[n.id])[0] for n in drawn.nodes],
            y=[where.at(drawn.layout.slots[n.id])[1] for n in drawn.nodes],
            mode="markers",
            text=[inert(n.node.name) for n in drawn.nodes],
            marker={
                "size": [round(2 * radius[n.id], 1) for n in drawn.nodes],
                "color": "rgba(255,255,255,0.01)",
                "line": {"width": 0},
            },
            customdata=[["node", n.id] for n in drawn.nodes],
            hovertext=[_node_hover(n) for n in drawn.nodes],
            hoverinfo="text",
            name="nodes",
        )
    )
    return data


def _legend_traces() -> list[dict[str, Any]]:
    """A legend for the ring colours."""
    data: list[dict[str, Any]] = []
    for health, swatch in HEALTH_COLOURS.items():
        data.append(
            {
                "type": "scatter",
                "x": [None],
                "y": [None],
                "mode": "markers",
                "marker": {"color": swatch, "size": 10},
                "name": HEALTH_NAMES[health],
            }
        )
    return data


def _layout(where: Canvas) -> dict[str, Any]:
    """Axes in pixels, y pointing down; `meta` has the drawing's size, which the page keeps at
    one unit a pixel (it scrolls a map bigger than its box)."""
    return {
        "uirevision": "map",
        "dragmode": "pan",
        "hovermode": "closest",
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "legend": {"orientation": "h", "y": 1, "x": 0, "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)"},
        "xaxis": {"visible": False, "range": [0, round(where.width_px, 1)]},
        "yaxis": {"visible": False, "range": [round(where.height_px, 1), 0], "scaleanchor": "x", "scaleratio": 1},
        "meta": {"width_px": round(where.width_px, 1), "height_px": round(where.height_px, 1)},
    }


def _node_hover(node: DrawnNode) -> str:
    lines = _figure_lines(node.node, "")
    if node.function is not None:
        lines += ["", *_figure_lines(node.function, "function: ")]
    return "<br>".join(lines)


def _figure_lines(node: MapNode, prefix: str) -> list[str]:
    figures = node.figures
    lines = [f"{prefix}<b>{inert(node.name)}</b> ({inert(type_tag(node.type))})"]
    if figures is not None:
        lines.append(f"{figures.requests:,} requests · {figures.requests_per_s:.2f}/s")
        lines.append(
            f"error {figures.error_rate:.1%} · fault {figures.fault_rate:.1%} · throttle {figures.throttle_rate:.1%}"
        )
        if figures.p50_ms is not None and figures.p90_ms is not None and figures.p99_ms is not None:
            lines.append(f"p50 {figures.p50_ms:,.1f} · p90 {figures.p90_ms:,.1f} · p99 {figures.p99_ms:,.1f} ms")
        if figures.cold_starts:
            lines.append(f"cold starts {figures.cold_starts:,} ({figures.cold_start_rate:.1%})")
    return lines
