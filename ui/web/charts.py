"""Small plotly charts: response-time histograms and the analytics time series."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, Final

import plotly.graph_objects as go

HEALTH_LINES: Final = (
    ("error_rate", "error", "#f0a30a"),
    ("fault_rate", "fault", "#d62728"),
    ("throttle_rate", "throttle", "#8e44ad"),
)
PERCENTILES: Final = (("p50_ms", "p50", "#4c78a8"), ("p90_ms", "p90", "#f58518"), ("p99_ms", "p99", "#e45756"))
_COMPACT: Final = {"margin": {"l": 50, "r": 10, "t": 30, "b": 40}, "height": 220, "hovermode": "x unified"}


def bucket_histogram(buckets: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """Response-time buckets (low_ms, high_ms, count) as bars on a log axis; a box-select gives a range."""
    figure = go.Figure(
        go.Bar(
            x=[math.sqrt(b["low_ms"] * b["high_ms"]) for b in buckets],
            y=[b["count"] for b in buckets],
            width=[b["high_ms"] - b["low_ms"] for b in buckets],
            customdata=[[b["low_ms"], b["high_ms"]] for b in buckets],
            hovertemplate="%{customdata[0]:.1f}-%{customdata[1]:.1f} ms: %{y}<extra></extra>",
            marker={"color": "#4c78a8"},
        )
    )
    figure.update_layout(
        title={"text": title, "font": {"size": 13}},
        xaxis={"type": "log", "title": "ms"},
        dragmode="select",
        selectdirection="h",
        uirevision=title,
        **_COMPACT,
    )
    return figure


def log_buckets(durations_ms: Sequence[float], per_decade: int = 4) -> list[dict[str, Any]]:
    """Durations into log-spaced buckets, as the map's histograms are."""
    counts: dict[int, int] = {}
    for value in durations_ms:
        key = math.floor(math.log10(max(value, 0.001)) * per_decade)
        counts[key] = counts.get(key, 0) + 1
    return [
        {"low_ms": 10 ** (k / per_decade), "high_ms": 10 ** ((k + 1) / per_decade), "count": n}
        for k, n in sorted(counts.items())
    ]


def _times(points: Sequence[Mapping[str, Any]]) -> list[str]:
    from datetime import datetime

    return [datetime.fromtimestamp(p["start_ns"] / 1e9, tz=UTC).isoformat() for p in points]


def series_figures(points: Sequence[Mapping[str, Any]]) -> dict[str, go.Figure]:
    """Requests, error/fault/throttle rates and p50/p90/p99 over time, one figure each."""
    times = _times(points)
    requests = go.Figure(
        go.Bar(x=times, y=[p["requests"] for p in points], marker={"color": "#4c78a8"}, name="requests")
    )
    requests.update_layout(title={"text": "requests per step", "font": {"size": 13}}, uirevision="requests", **_COMPACT)
    rates = go.Figure()
    for key, name, colour in HEALTH_LINES:
        rates.add_trace(go.Scatter(x=times, y=[p[key] for p in points], name=name, line={"color": colour}))
    rates.update_layout(
        title={"text": "error / fault / throttle rate", "font": {"size": 13}},
        yaxis={"tickformat": ".0%"},
        uirevision="rates",
        **_COMPACT,
    )
    latency = go.Figure()
    for key, name, colour in PERCENTILES:
        latency.add_trace(go.Scatter(x=times, y=[p[key] for p in points], name=name, line={"color": colour}))
    latency.update_layout(title={"text": "response time (ms)", "font": {"size": 13}}, uirevision="latency", **_COMPACT)
    cold = go.Figure(
        go.Bar(x=times, y=[p["cold_starts"] for p in points], marker={"color": "#1f77b4"}, name="cold starts")
    )
    cold.update_layout(title={"text": "cold starts", "font": {"size": 13}}, uirevision="cold", **_COMPACT)
    return {"requests": requests, "rates": rates, "latency": latency, "cold": cold}
