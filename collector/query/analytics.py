"""Analytics: time series of request figures, and comparisons of two windows or two values.

The subject is the whole window's incoming requests (entries with no caller), one node, or
one edge; the figures are those of the map (collector.query.figures), per step bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from collector.query.figure_view import RequestFigures, figure_fields
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
from spanlang import filter_ast as ast

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


@dataclass(frozen=True, slots=True)
class SeriesPoint(RequestFigures):
    """One step bucket's figures; ``start_ns``: where the bucket starts."""

    start_ns: int


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """One point per step bucket (buckets without requests are left out)."""

    start_ns: int
    end_ns: int
    step_s: float
    points: tuple[SeriesPoint, ...]


@dataclass(frozen=True, slots=True)
class ComparedSide(RequestFigures):
    """One side of a comparison: a window (``baseline``, ``current``) or a field's value."""

    label: str

    @classmethod
    def labelled(cls, label: str, figures: Figures | None, window_s: float) -> ComparedSide:
        shown = figures if figures is not None else FigureAccumulator().figures()
        return cls(**figure_fields(shown, window_s), label=label)


@dataclass(frozen=True, slots=True)
class Deltas:
    """b - a for each compared figure (None where either side has none)."""

    requests: int
    error_rate: float
    fault_rate: float
    throttle_rate: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None

    @classmethod
    def between(cls, a: RequestFigures, b: RequestFigures) -> Deltas:
        def minus(x: float | None, y: float | None) -> float | None:
            return y - x if x is not None and y is not None else None

        return cls(
            requests=b.requests - a.requests,
            error_rate=b.error_rate - a.error_rate,
            fault_rate=b.fault_rate - a.fault_rate,
            throttle_rate=b.throttle_rate - a.throttle_rate,
            p50_ms=minus(a.p50_ms, b.p50_ms),
            p90_ms=minus(a.p90_ms, b.p90_ms),
            p99_ms=minus(a.p99_ms, b.p99_ms),
        )


@dataclass(frozen=True, slots=True)
class WindowComparison:
    """A baseline window (``a``) against the current one (``b``)."""

    a: ComparedSide
    b: ComparedSide
    delta: Deltas


@dataclass(frozen=True, slots=True)
class ValueComparison:
    """Figures per value of ``field``; ``a``, ``b`` and ``delta`` for the two busiest, if two."""

    field: CompareField
    groups: tuple[ComparedSide, ...]
    a: ComparedSide | None
    b: ComparedSide | None
    delta: Deltas | None


def time_series(
    reader: SpanReader, window: TimeWindow, expr: ast.Expr | None, subject: Subject, step_s: float | None
) -> TimeSeries:
    """The subject's figures per step bucket."""
    step_ns = step_ns_for(window, step_s)
    by_bucket = _by_key(reader, window, expr, subject, ByTimeBucket(window.start_ns, step_ns))
    points = tuple(
        SeriesPoint(**figure_fields(figures, step_ns / 1e9), start_ns=window.start_ns + int(bucket) * step_ns)
        for bucket, figures in sorted(by_bucket.items())
    )
    return TimeSeries(window.start_ns, window.end_ns, step_ns / 1e9, points)


def compare_windows(
    reader: SpanReader, current: TimeWindow, baseline: TimeWindow, expr: ast.Expr | None, subject: Subject
) -> WindowComparison:
    """The subject's figures in a baseline window and the current one, with current - baseline."""
    sides = []
    for label, window in (("baseline", baseline), ("current", current)):
        found = _by_key(reader, window, expr, subject, None)
        sides.append(ComparedSide.labelled(label, found.get(True), (window.end_ns - window.start_ns) / 1e9))
    return WindowComparison(sides[0], sides[1], Deltas.between(sides[0], sides[1]))


def compare_values(
    reader: SpanReader, window: TimeWindow, expr: ast.Expr | None, subject: Subject, field: CompareField
) -> ValueComparison:
    """The subject's figures per value of `field` (all values), and b - a for the two busiest."""
    found = _by_key(reader, window, expr, subject, ByField(field))
    window_s = (window.end_ns - window.start_ns) / 1e9
    groups = tuple(ComparedSide.labelled(str(key), figures, window_s) for key, figures in found.items())
    busiest = sorted(groups, key=lambda g: -g.requests)[:2]
    if len(busiest) < 2:
        return ValueComparison(field, groups, None, None, None)
    a, b = sorted(busiest, key=lambda g: g.label)
    return ValueComparison(field, groups, a, b, Deltas.between(a, b))
