"""The Insights page's timeline: each insight a bar from its start to its end (or now), by kind.

Every string from a span (node names) goes through map_figure.inert first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from collector.insights.insight import Insight
from ui.web.charts import Figure
from ui.web.map_figure import inert

KIND_COLOURS: Final = {"fault": "#d62728", "throttle": "#8e44ad", "error": "#f0a30a", "latency": "#1f77b4"}
ROW_PX: Final = 26


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def row_label(insight: Insight) -> str:
    return f"{insight.kind} · {inert(insight.root_cause.name)}"


def timeline_figure(insights: Sequence[Insight], now_ns: int) -> Figure:
    """One bar per insight on a time axis; its customdata is the insight's id (the page links it)."""
    data: list[dict[str, Any]] = []
    for kind, colour in KIND_COLOURS.items():
        chosen = [i for i in insights if i.kind == kind]
        if not chosen:
            continue
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": kind,
                "y": [row_label(i) for i in chosen],
                "base": [_iso(i.start_ns) for i in chosen],
                "x": [max(1.0, ((i.end_ns or now_ns) - i.start_ns) / 1e6) for i in chosen],  # ms on a date axis
                "marker": {"color": colour, "opacity": [1.0 if i.state == "open" else 0.55 for i in chosen]},
                "customdata": [i.id for i in chosen],
                "hovertext": [
                    f"{inert(i.kind)} at {inert(i.root_cause.name)} ({inert(i.root_cause.type)})<br>"
                    f"{i.failures:,} of {i.requests:,} ({i.share:.1%}, baseline {i.baseline_share:.1%})"
                    f"<br>{'open' if i.state == 'open' else 'closed'}"
                    for i in chosen
                ],
                "hoverinfo": "text",
            }
        )
    rows = len({row_label(i) for i in insights})
    return {
        "data": data,
        "layout": {
            "barmode": "overlay",
            "height": max(160, 60 + ROW_PX * rows),
            "margin": {"l": 220, "r": 10, "t": 10, "b": 40},
            "xaxis": {"type": "date"},
            "yaxis": {"automargin": True},
            "legend": {"orientation": "h"},
            "uirevision": "insights",
        },
    }
