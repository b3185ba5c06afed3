"""Request figures as readers see them: counts, rates, health and percentiles over a window.

The read models the map, its edges and the analytics series share. Frozen dataclasses, so the
API documents them in /openapi.json, the UI reads attributes instead of keys, and JSON is made
only at the HTTP edge (FastAPI for the API, orjson for the pages: both take dataclasses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.query.figures import Figures, Health


@dataclass(frozen=True, slots=True)
class Histogram:
    """Response times in log-spaced buckets, as columns (as charts take them): bucket i holds
    count[i] requests whose response time lies in [low_ms[i], high_ms[i])."""

    low_ms: tuple[float, ...]
    high_ms: tuple[float, ...]
    count: tuple[int, ...]

    @classmethod
    def of(cls, buckets: Sequence[tuple[float, float, int]]) -> Histogram:
        if not buckets:
            return cls((), (), ())
        low_ms, high_ms, count = zip(*buckets, strict=True)
        return cls(low_ms, high_ms, count)


@dataclass(frozen=True, slots=True)
class RequestFigures:
    """A subject's requests over a window: counts, their shares, X-Ray's health colour,
    percentiles, and how much cold starts weigh (``p99_cold_start_share``: of the time callers
    waited in the slowest 1%, the share spent initializing). ``requests`` is how many happened;
    ``stored_requests`` how many calls are stored: fewer when head sampling kept only some, and
    then requests, rates and percentiles are estimated from the sampled ones' weights."""

    requests: int
    requests_per_s: float
    stored_requests: int
    ok: int
    errors: int
    faults: int
    throttles: int
    ok_rate: float
    error_rate: float
    fault_rate: float
    throttle_rate: float
    health: Health
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    cold_starts: int
    cold_start_rate: float
    p99_cold_start_share: float | None

    @classmethod
    def of(cls, figures: Figures, window_s: float) -> RequestFigures:
        return cls(**figure_fields(figures, window_s))


@dataclass(frozen=True, slots=True)
class NodeFigures(RequestFigures):
    """A node's or an edge's figures, with the response-time histogram."""

    histogram: Histogram

    @classmethod
    def of(cls, figures: Figures, window_s: float) -> NodeFigures:
        return cls(**figure_fields(figures, window_s), histogram=Histogram.of(figures.histogram))


def figure_fields(figures: Figures, window_s: float) -> dict[str, Any]:
    """RequestFigures' fields, for it and the views that extend it."""
    return {
        "requests": figures.requests,
        "requests_per_s": figures.requests / window_s if window_s > 0 else 0.0,
        "stored_requests": figures.stored_requests,
        "ok": figures.ok,
        "errors": figures.errors,
        "faults": figures.faults,
        "throttles": figures.throttles,
        "ok_rate": figures.rate(figures.ok),
        "error_rate": figures.rate(figures.errors),
        "fault_rate": figures.rate(figures.faults),
        "throttle_rate": figures.rate(figures.throttles),
        "health": figures.health,
        "p50_ms": figures.p50_ms,
        "p90_ms": figures.p90_ms,
        "p99_ms": figures.p99_ms,
        "cold_starts": figures.cold_starts,
        "cold_start_rate": figures.rate(figures.cold_starts),
        "p99_cold_start_share": figures.p99_cold_share,
    }
