"""A trace as a plotly waterfall: spans nested by parent, coloured by service, on one time axis.

Rows follow the call tree (a consumer in a linked trace sits under the producer span that sent
its message); markers flag error, fault, throttle and cold start; the Initialization span is
hatched; spans on the critical path are outlined; async hops are dashed connectors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from collector.query.trace_view import SpanView
from ui.web.map_figure import inert

PALETTE: Final = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#b279a2",
    "#9d755d",
    "#72b7b2",
    "#eeca3b",
    "#ff9da6",
    "#bab0ac",
    "#e45756",
)
FLAG_MARKERS: Final = (
    ("fault", "x", "#d62728", "fault 5xx"),
    ("error", "triangle-up", "#f0a30a", "error 4xx"),
    ("throttle", "diamond", "#8e44ad", "throttle 429"),
    ("cold_start", "star", "#1f77b4", "cold start"),
)
INITIALIZATION: Final = "Initialization"


def ordered_spans(spans: Sequence[SpanView]) -> list[tuple[SpanView, int]]:
    """(span, depth) in call-tree order; consumers of linked traces under their producer."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str | None, list[SpanView]] = defaultdict(list)
    for span in spans:
        parent = span.parent_span_id
        if parent not in by_id:
            producer = next((link.span_id for link in span.links if link.span_id in by_id), None)
            parent = producer
        children[parent].append(span)
    ordered: list[tuple[SpanView, int]] = []
    stack = [(s, 0) for s in sorted(children[None], key=lambda s: -s.start_ns)]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((span, depth))
        kids = sorted(children.get(span.span_id, []), key=lambda s: -s.start_ns)
        stack.extend((kid, depth + 1) for kid in kids)
    ordered += [(s, 0) for s in spans if s.span_id not in seen]  # cycles in bad data
    return ordered


def waterfall_figure(spans: Sequence[SpanView], critical: set[str]) -> dict[str, Any]:
    """The waterfall for a trace's spans (and linked consumers'); `critical`: span ids on the path."""
    rows = ordered_spans(spans)
    if not rows:
        return {"data": [], "layout": {}}
    origin_ns = min(s.start_ns for s, _ in rows)
    services = sorted({s.service for s, _ in rows})
    labels = [f"{'  ' * depth}{inert(span.service)} · {inert(span.name)}" for span, depth in rows]
    starts = [(span.start_ns - origin_ns) / 1e6 for span, _ in rows]
    data = _bar_traces(rows, starts, services, critical) + _flag_traces(rows, starts) + _async_connectors(rows, starts)
    return {"data": data, "layout": _waterfall_layout(rows, labels)}


Rows = list[tuple[SpanView, int]]


def _bar_traces(rows: Rows, starts: list[float], services: list[str], critical: set[str]) -> list[dict[str, Any]]:
    """One bar trace per service; spans on the critical path outlined."""
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(services)}
    data: list[dict[str, Any]] = []
    for service in services:
        picked = [i for i, (span, _) in enumerate(rows) if span.service == service]
        data.append(
            dict(
                type="bar",
                orientation="h",
                y=picked,
                base=[starts[i] for i in picked],
                x=[max(rows[i][0].duration_ms, 0.001) for i in picked],
                marker={
                    "color": colour[service],
                    "line": {
                        "color": ["#111111" if rows[i][0].span_id in critical else colour[service] for i in picked],
                        "width": [2.5 if rows[i][0].span_id in critical else 0.5 for i in picked],
                    },
                    "pattern": {"shape": ["/" if rows[i][0].name == INITIALIZATION else "" for i in picked]},
                },
                customdata=[rows[i][0].span_id for i in picked],
                hovertext=[_hover(rows[i][0], starts[i]) for i in picked],
                hoverinfo="text",
                name=inert(service),
            )
        )
    return data


def _flag_traces(rows: Rows, starts: list[float]) -> list[dict[str, Any]]:
    """A marker at the end of each span with an error, fault, throttle or cold start."""
    data: list[dict[str, Any]] = []
    for flag, symbol, flag_colour, name in FLAG_MARKERS:
        picked = [i for i, (span, _) in enumerate(rows) if getattr(span, flag)]
        if picked:
            data.append(
                dict(
                    type="scatter",
                    x=[starts[i] + rows[i][0].duration_ms for i in picked],
                    y=picked,
                    mode="markers",
                    marker={"symbol": symbol, "color": flag_colour, "size": 11},
                    name=name,
                    hoverinfo="skip",
                    customdata=[rows[i][0].span_id for i in picked],
                )
            )
    return data


def _waterfall_layout(rows: Rows, labels: list[str]) -> dict[str, Any]:
    return dict(
        barmode="overlay",
        uirevision="trace",
        hovermode="closest",
        height=max(260, 26 * len(rows) + 90),
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        xaxis={"title": {"text": "ms since the trace started"}, "zeroline": False},
        yaxis={
            "autorange": "reversed",
            "tickmode": "array",
            "tickvals": list(range(len(rows))),
            "ticktext": labels,
            "automargin": True,
        },
    )


def _async_connectors(rows: list[tuple[SpanView, int]], starts: list[float]) -> list[dict[str, Any]]:
    index = {span.span_id: i for i, (span, _) in enumerate(rows)}
    xs: list[float | None] = []
    ys: list[float | None] = []
    for i, (span, _) in enumerate(rows):
        for link in span.links:
            j = index.get(link.span_id)
            if j is not None:
                xs += [starts[j] + rows[j][0].duration_ms, starts[i], None]
                ys += [j, i, None]
    if not xs:
        return []
    return [
        dict(
            type="scatter",
            x=xs,
            y=ys,
            mode="lines",
            line={"dash": "dash", "color": "#5f6b7a", "width": 1.4},
            name="async hop",
            hoverinfo="skip",
        )
    ]


def _hover(span: SpanView, start_ms: float) -> str:
    flags = [name for name in ("error", "fault", "throttle") if getattr(span, name)]
    if span.cold_start:
        flags.append("cold start")
    return "<br>".join(
        [
            f"<b>{inert(span.name)}</b> ({inert(span.service)})",
            f"+{start_ms:,.1f} ms, {span.duration_ms:,.2f} ms",
            ", ".join(flags) or "ok",
        ]
    )
