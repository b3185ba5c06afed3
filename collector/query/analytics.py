"""Analytics: time series of request figures, and comparisons of two windows or two values.

The subject is the whole window's incoming requests (entries with no caller), one node, or
one edge; the figures are those of the map (collector.query.figures), per step bucket.
"""

from __future__ import annotations

from typing import Any, Final

from collector.filters import filter_ast as ast
from collector.query.figures import FigureAccumulator, Figures
from collector.storage.protocols import (
    ByField,
    ByTimeBucket,
    CompareField,
    Grouping,
    SpanReader,
    Subject,
    TimeWindow,
)

MAX_POINTS: Final = 1000
DEFAULT_POINTS: Final = 60


def step_ns_for(window: TimeWindow, step_s: float | None) -> int:
    """The bucket width: as asked (at most MAX_POINTS buckets), else ~60 buckets."""
    span_ns = window.end_ns - window.start_ns
    # A step past the window is the window (one point): also what keeps an infinite one finite.
    asked_ns = max(1_000_000, int(min(step_s, span_ns / 1e9) * 1e9)) if step_s is not None else None
    step_ns = asked_ns if asked_ns is not None else max(1_000_000_000, span_ns // DEFAULT_POINTS)
    return max(step_ns, -(-span_ns // MAX_POINTS))


def _by_key(
    reader: SpanReader, window: TimeWindow, expr: ast.Expr | None, subject: Subject, grouping: Grouping
) -> dict[Any, Figures]:
    """Figures per group of the subject's calls."""
    found: dict[Any, FigureAccumulator] = {}
    for row in reader.figure_rows(window, expr, subject, grouping):
        found.setdefault(row[0], FigureAccumulator()).add(row[1:])
    return {k: acc.figures() for k, acc in found.items()}


def time_series(
    reader: SpanReader, window: TimeWindow, expr: ast.Expr | None, subject: Subject, step_s: float | None
) -> dict[str, Any]:
    """One point per step bucket (buckets without requests are left out)."""
    step_ns = step_ns_for(window, step_s)
    by_bucket = _by_key(reader, window, expr, subject, ByTimeBucket(window.start_ns, step_ns))
    points = [
        {"start_ns": window.start_ns + int(bucket) * step_ns, **figures.as_json(step_ns / 1e9, with_histogram=False)}
        for bucket, figures in sorted(by_bucket.items())
    ]
    return {"start_ns": window.start_ns, "end_ns": window.end_ns, "step_s": step_ns / 1e9, "points": points}


_DELTA_FIELDS: Final = ("requests", "error_rate", "fault_rate", "throttle_rate", "p50_ms", "p90_ms", "p99_ms")


def deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """b - a for each compared figure (None where either side has none)."""
    return {k: (b[k] - a[k]) if a.get(k) is not None and b.get(k) is not None else None for k in _DELTA_FIELDS}


def _side(label: str, figures: Figures | None, window_s: float) -> dict[str, Any]:
    body = figures.as_json(window_s) if figures is not None else {"requests": 0}
    return {"label": label, **body}


def compare_windows(
    reader: SpanReader, current: TimeWindow, baseline: TimeWindow, expr: ast.Expr | None, subject: Subject
) -> dict[str, Any]:
    """The subject's figures in a baseline window and the current one, with current - baseline."""
    sides = []
    for label, window in (("baseline", baseline), ("current", current)):
        found = _by_key(reader, window, expr, subject, None)
        sides.append(_side(label, found.get(True), (window.end_ns - window.start_ns) / 1e9))
    return {"a": sides[0], "b": sides[1], "delta": deltas(sides[0], sides[1])}


def compare_values(
    reader: SpanReader, window: TimeWindow, expr: ast.Expr | None, subject: Subject, field: CompareField
) -> dict[str, Any]:
    """The subject's figures per value of `field` (all values), and b - a for the two busiest."""
    found = _by_key(reader, window, expr, subject, ByField(field))
    window_s = (window.end_ns - window.start_ns) / 1e9
    groups = [_side(str(key), figures, window_s) for key, figures in found.items()]
    busiest = sorted(groups, key=lambda g: -int(g["requests"]))[:2]
    body: dict[str, Any] = {"field": field, "groups": groups}
    if len(busiest) == 2:
        a, b = sorted(busiest, key=lambda g: str(g["label"]))
        body.update(a=a, b=b, delta=deltas(a, b))
    return body
