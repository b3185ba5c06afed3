"""The map's edges as plotly traces: each routed through its bends, out of and into its nodes'
cells sideways so it never runs through a label, async ones dashed, faint ones apart, with
arrowheads and a diamond to click in the middle."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any, Final

from collector.query.figure_view import RequestFigures
from ui.web.compact_map import DrawnEdge
from ui.web.drawn_map import DrawnMap, colour, scatter
from ui.web.map_canvas import Canvas
from ui.web.map_layout import Layout

EDGE_COLOUR: Final = "#5f6b7a"
LABELLED_EDGES: Final = 12
BACK_EDGE_OFFSET_PX: Final = 6.0
Point = tuple[float, float]


def _edge_label(figures: RequestFigures | None) -> str:
    if figures is None or figures.p99_ms is None:
        return ""
    return f"{figures.requests_per_s:.2f}/s · p99 {figures.p99_ms:,.0f} ms"


def _route(edge: DrawnEdge, layout: Layout, where: Canvas) -> list[Point]:
    """An edge's polyline: out of each cell sideways along its row, across the gap between
    columns, into the next cell sideways, so it never runs through a label (they sit under the
    rings); through each bend on the way."""
    slots = [layout.slots[edge.source], *layout.bends.get((edge.source, edge.target), ()), layout.slots[edge.target]]
    # An edge back to the left runs a little lower, not over the edge it returns along.
    below = BACK_EDGE_OFFSET_PX if slots[-1][0] < slots[0][0] else 0.0
    points = [_shifted(where.at(slots[0]), below)]
    for here, there in itertools.pairwise(slots):
        (x0, y0), (x1, y1) = _shifted(where.at(here), below), _shifted(where.at(there), below)
        if x0 != x1:
            way = 1 if x1 > x0 else -1
            points += [(x0 + way * where.half_column_px(here[0]), y0), (x1 - way * where.half_column_px(there[0]), y1)]
        points.append((x1, y1))
    return points


def _shifted(point: Point, down_px: float) -> Point:
    return point[0], point[1] + down_px


def _trimmed(points: list[Point], tail_r: float, head_r: float) -> list[Point]:
    """A polyline, its ends pulled back to the rings' edges and repeated points dropped."""
    unique = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    if len(unique) < 2:
        return unique * 2
    return [_towards(unique[0], unique[1], tail_r), *unique[1:-1], _towards(unique[-1], unique[-2], head_r)]


def _towards(point: Point, other: Point, by: float) -> Point:
    length = max(math.dist(point, other), 1e-9)
    share = min(by / length, 0.45)
    return point[0] + (other[0] - point[0]) * share, point[1] + (other[1] - point[1]) * share


def edge_traces(drawn: DrawnMap, radius: Mapping[str, float]) -> list[dict[str, Any]]:
    """Sync and async lines (faint ones apart), arrowheads, and the edges' click targets."""
    lines = {
        e.edge.id: _trimmed(_route(e, drawn.layout, drawn.canvas), radius[e.source], radius[e.target])
        for e in drawn.edges
    }
    traces = []
    for is_async, faint in ((False, False), (True, False), (False, True), (True, True)):
        chosen = [
            lines[e.edge.id] for e in drawn.edges if (e.edge.is_async, drawn.faint_edge(e.edge.id)) == (is_async, faint)
        ]
        traces.append(
            scatter(
                x=[x for line in chosen for x in [*(round(x, 2) for x, _ in line), None]],
                y=[y for line in chosen for y in [*(round(y, 2) for _, y in line), None]],
                mode="lines",
                hoverinfo="skip",
                name=("async calls" if is_async else "calls") + (" faint" if faint else ""),
                line={"color": colour(EDGE_COLOUR, faint), "width": 1.6, "dash": "6px,5px" if is_async else "solid"},
            )
        )
    for faint in (False, True):
        traces.append(
            _arrowheads([lines[e.edge.id] for e in drawn.edges if drawn.faint_edge(e.edge.id) == faint], faint)
        )
    return [*traces, _diamonds(drawn, [_middle(_route(e, drawn.layout, drawn.canvas)) for e in drawn.edges])]


def _arrowheads(lines: list[list[Point]], faint: bool) -> dict[str, Any]:
    """One marker per line, at its end, pointing along its last segment."""
    ends = [(line[-2], line[-1]) for line in lines]
    return scatter(
        x=[round(x1, 2) for _, (x1, _) in ends],
        y=[round(y1, 2) for _, (_, y1) in ends],
        mode="markers",
        hoverinfo="skip",
        name="arrowheads faint" if faint else "arrowheads",
        marker={
            "symbol": "arrow",
            # clockwise from up, the y axis pointing down
            "angle": [round(math.degrees(math.atan2(x1 - x0, y0 - y1)), 1) for (x0, y0), (x1, y1) in ends],
            "size": 10,
            "color": colour(EDGE_COLOUR, faint),
        },
    )


def _diamonds(drawn: DrawnMap, middles: list[Point]) -> dict[str, Any]:
    """Each edge's click target and hover, with its figures as text on a small map (past
    LABELLED_EDGES they would clutter it: hover only)."""
    labelled = len(drawn.edges) <= LABELLED_EDGES
    return scatter(
        x=[round(x, 2) for x, _ in middles],
        y=[round(y, 2) for _, y in middles],
        mode="markers+text" if labelled else "markers",
        text=[_edge_label(e.edge.figures) for e in drawn.edges] if labelled else None,
        textposition="top center",
        textfont={"size": 10, "color": "#3d4752"},
        marker={
            "size": 8,
            "symbol": "diamond",
            "color": [colour(EDGE_COLOUR, drawn.faint_edge(e.edge.id)) for e in drawn.edges],
        },
        customdata=[["edge", e.edge.id] for e in drawn.edges],
        hoverinfo="text",
        hovertext=[_edge_label(e.edge.figures) or "no traffic" for e in drawn.edges],
        name="edges",
    )


def _middle(line: list[Point]) -> Point:
    """Where an edge's diamond goes: the middle of the middle segment of its polyline."""
    (x0, y0), (x1, y1) = line[(len(line) - 1) // 2], line[(len(line) - 1) // 2 + 1]
    return (x0 + x1) / 2, (y0 + y1) / 2
