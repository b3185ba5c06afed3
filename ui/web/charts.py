"""Small plotly charts: response-time histograms and the analytics time series.

Built as plain figure dicts (data and layout), like the map: plotly's graph objects validate
each property at a cost that dominated the map endpoint (bench/ui.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from collector.query.analytics import SeriesPoint
from collector.query.cold_starts import ColdStartSeries
from collector.query.figure_view import Histogram
from ui.web.map_figure import inert

HEALTH_LINES: Final = (
    ("error_rate", "error", "#f0a30a"),
    ("fault_rate", "fault", "#d62728"),
    ("throttle_rate", "throttle", "#8e44ad"),
)
PERCENTILES: Final = (("p50_ms", "p50", "#4c78a8"), ("p90_ms", "p90", "#f58518"), ("p99_ms", "p99", "#e45756"))
Figure = dict[str, Any]


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 13}},
        "margin": {"l": 50, "r": 10, "t": 30, "b": 40},
        "height": 220,
        "hovermode": "x unified",
        "uirevision": title,
        **extra,
    }


def bucket_histogram(buckets: Histogram, title: str) -> Figure:
    """Response-time buckets (low_ms, high_ms, count) as bars on a log axis; a box-select gives a range."""
    bar = {
        "type": "bar",
        "x": [math.sqrt(low * high) for low, high in zip(buckets.low_ms, buckets.high_ms, strict=True)],
        "y": list(buckets.count),
        "width": [high - low for low, high in zip(buckets.low_ms, buckets.high_ms, strict=True)],
        "customdata": [[low, high] for low, high in zip(buckets.low_ms, buckets.high_ms, strict=True)],
        "hovertemplate": "%{customdata[0]:.1f}-%{customdata[1]:.1f} ms: %{y}<extra></extra>",
        "marker": {"color": "#4c78a8"},
    }
    layout = _layout(title, xaxis={"type": "log", "title": {"text": "ms"}}, dragmode="select", selectdirection="h")
    layout["hovermode"] = "closest"
    return {"data": [bar], "layout": layout}


def log_buckets(durations_ms: Sequence[float], per_decade: int = 4) -> Histogram:
    """Durations into log-spaced buckets, as the map's histograms are."""
    counts: dict[int, int] = {}
    for value in durations_ms:
        key = math.floor(math.log10(max(value, 0.001)) * per_decade)
        counts[key] = counts.get(key, 0) + 1
    return Histogram.of([(10 ** (k / per_decade), 10 ** ((k + 1) / per_decade), n) for k, n in sorted(counts.items())])


def _times(points: Sequence[SeriesPoint]) -> list[str]:
    return [datetime.fromtimestamp(p.start_ns / 1e9, tz=UTC).isoformat() for p in points]


def series_figures(points: Sequence[SeriesPoint]) -> dict[str, Figure]:
    """Requests, error/fault/throttle rates, p50/p90/p99 and cold starts over time, one figure each."""
    times = _times(points)

    def lines(series: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
        return [
            {
                "type": "scatter",
                "mode": "lines",
                "x": times,
                "y": [getattr(p, key) for p in points],
                "name": name,
                "line": {"color": colour},
            }
            for key, name, colour in series
        ]

    def bars(key: str, name: str, colour: str) -> list[dict[str, Any]]:
        heights = [getattr(p, key) for p in points]
        return [{"type": "bar", "x": times, "y": heights, "name": name, "marker": {"color": colour}}]

    return {
        "requests": {"data": bars("requests", "requests", "#4c78a8"), "layout": _layout("requests per step")},
        "rates": {
            "data": lines(HEALTH_LINES),
            "layout": _layout("error / fault / throttle rate", yaxis={"tickformat": ".0%"}),
        },
        "latency": {"data": lines(PERCENTILES), "layout": _layout("response time (ms)")},
        "cold": {"data": bars("cold_starts", "cold starts", "#1f77b4"), "layout": _layout("cold starts")},
    }


def cold_start_figure(series: ColdStartSeries) -> Figure:
    """Cold starts per step, a stacked bar per node that had any (the table beside lists them)."""
    times = [datetime.fromtimestamp(start / 1e9, tz=UTC).isoformat() for start in series.bucket_starts_ns]
    bars = [
        {"type": "bar", "x": times, "y": list(counts), "name": inert(node.name)}
        for node, counts in zip(series.nodes, series.counts, strict=True)
    ]
    title = "cold starts, downstream of the selection" if series.nodes else "cold starts: none in this window"
    return {"data": bars, "layout": _layout(title, barmode="stack", showlegend=True)}
