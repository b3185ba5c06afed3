"""Request figures as the map and analytics show them, from one row of SQL aggregates.

Every aggregate in map_sql yields the same run of columns (requests, ok, error, fault, throttle,
quantiles, histogram, cold starts); this module turns that run into a frozen value with
rates and X-Ray's health colour, so the map, its nodes and edges and the time series agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from collector.query.map_sql import BUCKETS_PER_DECADE

FIGURE_COLUMNS: Final = 8


@dataclass(frozen=True)
class Bucket:
    """Requests whose response time fell in [low_ms, high_ms)."""

    low_ms: float
    high_ms: float
    count: int


@dataclass(frozen=True)
class Figures:
    requests: int
    ok: int
    errors: int
    faults: int
    throttles: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    histogram: tuple[Bucket, ...]
    cold_starts: int

    def rate(self, count: int) -> float:
        return count / self.requests if self.requests else 0.0

    @property
    def health(self) -> str:
        """X-Ray's colour: fault (5xx) over throttle (429) over error (4xx) over ok."""
        if self.faults:
            return "fault"
        if self.throttles:
            return "throttle"
        if self.errors:
            return "error"
        return "ok"

    def as_json(self, window_s: float) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "requests_per_s": self.requests / window_s if window_s > 0 else 0.0,
            "ok": self.ok,
            "errors": self.errors,
            "faults": self.faults,
            "throttles": self.throttles,
            "ok_rate": self.rate(self.ok),
            "error_rate": self.rate(self.errors),
            "fault_rate": self.rate(self.faults),
            "throttle_rate": self.rate(self.throttles),
            "health": self.health,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "histogram": [{"low_ms": b.low_ms, "high_ms": b.high_ms, "count": b.count} for b in self.histogram],
            "cold_starts": self.cold_starts,
            "cold_start_rate": self.rate(self.cold_starts),
        }


def ms(value_ns: float | None) -> float | None:
    return None if value_ns is None else round(value_ns / 1e6, 3)


def quantiles_ms(values: Sequence[float] | None, count: int) -> list[float | None]:
    return [ms(v) for v in values] if values else [None] * count


def histogram(counts: Mapping[int, int] | None) -> tuple[Bucket, ...]:
    """DuckDB's histogram map of bucket index -> count as sorted buckets."""
    if not counts:
        return ()
    return tuple(
        Bucket(
            round(10 ** (k / BUCKETS_PER_DECADE), 3),
            round(10 ** ((k + 1) / BUCKETS_PER_DECADE), 3),
            int(n),
        )
        for k, n in sorted(counts.items())
    )


def figures_from(columns: Sequence[Any]) -> Figures:
    """The FIGURE_COLUMNS aggregate columns, in map_sql's order."""
    requests, ok, errors, faults, throttles, quantiles, buckets, cold = columns[:FIGURE_COLUMNS]
    p50, p90, p99 = quantiles_ms(quantiles, 3)
    return Figures(
        requests=int(requests),
        ok=int(ok or 0),
        errors=int(errors or 0),
        faults=int(faults or 0),
        throttles=int(throttles or 0),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        histogram=histogram(buckets),
        cold_starts=int(cold or 0),
    )
