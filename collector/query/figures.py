"""Request figures as the map and analytics show them, accumulated from latency-bucket rows.

Every aggregate in map_sql ends with the same run of columns per (key, bucket): the bucket,
count, ok/error/fault/throttle/cold counts, summed init and waited time, min and max. A
:class:`FigureAccumulator` adds such rows up (exactly: counts and sums add, min/max combine)
and yields :class:`Figures` with rates, X-Ray's health colour, a histogram and percentiles
interpolated inside their bucket between its smallest and largest value.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from collector.storage.map_sql import BUCKETS_PER_DECADE

# A map histogram is coarser than the buckets percentiles come from: 4 per decade.
HISTOGRAM_MERGE: Final = BUCKETS_PER_DECADE // 4
Health = Literal["ok", "error", "fault", "throttle"]


@functools.cache
def bucket_bounds_ms(bucket: int, per_decade: int = BUCKETS_PER_DECADE) -> tuple[float, float]:
    return round(10 ** (bucket / per_decade), 3), round(10 ** ((bucket + 1) / per_decade), 3)


@dataclass(slots=True)
class _Bucket:
    count: float = 0  # calls stored (an int), or once weighed, the requests they stand for
    init_ns: int = 0
    waited_ns: int = 0
    min_ns: int = 2**63
    max_ns: int = 0
    estimated: float = 0.0  # the requests its calls stand for (their sampling weights summed)

    def weighed(self) -> _Bucket:
        """This bucket counted by the requests its calls stand for."""
        return _Bucket(self.estimated, self.init_ns, self.waited_ns, self.min_ns, self.max_ns, self.estimated)


def percentile_ns(valued: list[tuple[int, _Bucket]], total: float, q: float) -> float | None:
    """The q-quantile as DuckDB's quantile_cont would give it, with each bucket's values taken
    as spread evenly between its min and max (exact when a bucket holds one distinct value).
    `valued`: (bucket, figures) in bucket order."""
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0.0
    for index, (_, b) in enumerate(valued):
        last = seen + b.count - 1  # the rank of this bucket's largest value
        if rank <= last:
            within = (rank - seen) / (b.count - 1) if b.count > 1 else 0.0
            return b.min_ns + within * (b.max_ns - b.min_ns)
        if rank < last + 1 and index + 1 < len(valued):
            return b.max_ns + (rank - last) * (valued[index + 1][1].min_ns - b.max_ns)
        seen += b.count
    return float(valued[-1][1].max_ns)


@dataclass(frozen=True)
class Figures:
    """`requests` is how many happened: the calls stored, or when head sampling kept only some
    of them, what the sampled calls' weights say (never fewer than were stored). Errors,
    faults, throttles and cold starts are the calls stored: tail-keep keeps every one."""

    requests: int
    stored_requests: int
    ok: int
    errors: int
    faults: int
    throttles: int
    cold_starts: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    histogram: tuple[tuple[float, float, int], ...]
    p99_cold_share: float | None

    def rate(self, count: int) -> float:
        return count / self.requests if self.requests else 0.0

    @property
    def health(self) -> Health:
        """X-Ray's colour: fault (5xx) over throttle (429) over error (4xx) over ok."""
        if self.faults:
            return "fault"
        if self.throttles:
            return "throttle"
        if self.errors:
            return "error"
        return "ok"


def _ms(value_ns: float | None) -> float | None:
    return None if value_ns is None else round(value_ns / 1e6, 3)


@dataclass
class FigureAccumulator:
    """Adds up bucket rows of one key (a node, an edge, a time step)."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    faults: int = 0
    throttles: int = 0
    cold_starts: int = 0
    estimated: float = 0.0
    buckets: dict[int, _Bucket] = field(default_factory=dict)

    def add_counts(
        self,
        requests: int,
        ok: int,
        errors: int,
        faults: int,
        throttles: int,
        cold: int,
        estimated: float | None = None,
    ) -> None:
        self.requests += int(requests)
        self.estimated += float(requests if estimated is None else estimated)
        self.ok += int(ok or 0)
        self.errors += int(errors or 0)
        self.faults += int(faults or 0)
        self.throttles += int(throttles or 0)
        self.cold_starts += int(cold or 0)

    def add_bucket(
        self,
        bucket: int,
        count: int,
        init_ns: int,
        waited_ns: int,
        low_ns: int | None,
        high_ns: int | None,
        estimated: float | None = None,
    ) -> None:
        """A latency bucket's count, summed init and waited time, smallest and largest value, and
        the requests its calls stand for."""
        # The map adds ~16k rows a request: the driver's values are ints already, not converted.
        b = self.buckets.get(bucket)
        if b is None:
            b = self.buckets[bucket] = _Bucket()
        b.count += count
        b.estimated += count if estimated is None else estimated
        if init_ns:
            b.init_ns += init_ns
        if waited_ns:
            b.waited_ns += waited_ns
        if low_ns is not None and low_ns < b.min_ns:  # None: only taken-back rows (no values)
            b.min_ns = low_ns
        if high_ns is not None and high_ns > b.max_ns:
            b.max_ns = high_ns

    def add(self, row: Sequence[Any]) -> None:
        """One row of map_sql's figure columns: a bucket and its counts and sums, in that order."""
        bucket, count, ok, errors, faults, throttles, cold, init_ns, waited_ns, low_ns, high_ns, estimated = row
        self.add_counts(count, ok, errors, faults, throttles, cold, estimated)
        self.add_bucket(bucket, count, init_ns, waited_ns, low_ns, high_ns, estimated)

    def _valued(self) -> tuple[list[tuple[int, _Bucket]], float]:
        """Buckets holding values, in order, and their total (taken-back rows leave none).

        When head sampling kept only some calls, each counts for the requests it stands for, and
        the calls tail-keep kept (standing for none: the sampled ones stand for them) drop out,
        so their failures and slowness do not skew the percentiles; without any sampled call
        the calls stored are all there is."""
        valued = sorted((k, b) for k, b in self.buckets.items() if b.count > 0 and b.max_ns >= b.min_ns)
        if any(b.estimated != b.count for _, b in valued) and any(b.estimated > 0 for _, b in valued):
            valued = [(k, b.weighed()) for k, b in valued if b.estimated > 0]
        return valued, sum(b.count for _, b in valued)

    def percentile_ms(self, q: float) -> float | None:
        return self.percentiles_ms(q)[0]

    def percentiles_ms(self, *qs: float) -> tuple[float | None, ...]:
        """Several quantiles from one pass over the buckets (a map asks ~350 of them)."""
        valued, total = self._valued()
        return tuple(_ms(percentile_ns(valued, total, q)) for q in qs)

    def figures(self) -> Figures:
        valued, total = self._valued()
        p50, p90, p99 = (percentile_ns(valued, total, q) for q in (0.5, 0.9, 0.99))
        merged: dict[int, float] = {}
        for key, b in valued:
            merged[key // HISTOGRAM_MERGE] = merged.get(key // HISTOGRAM_MERGE, 0) + b.count
        per_decade = BUCKETS_PER_DECADE // HISTOGRAM_MERGE
        requests = max(self.requests, round(self.estimated))
        return Figures(
            requests=requests,
            stored_requests=self.requests,
            ok=requests - (self.requests - self.ok),  # the stored calls that failed failed; the rest were ok
            errors=self.errors,
            faults=self.faults,
            throttles=self.throttles,
            cold_starts=self.cold_starts,
            p50_ms=_ms(p50),
            p90_ms=_ms(p90),
            p99_ms=_ms(p99),
            histogram=tuple((*bucket_bounds_ms(k, per_decade), round(n)) for k, n in sorted(merged.items())),
            p99_cold_share=_tail_init_share(valued, p99),
        )


def _tail_init_share(valued: list[tuple[int, _Bucket]], p99_ns: float | None) -> float | None:
    """Of the time callers waited in the slowest 1% (from the p99's bucket up), the share spent in init."""
    if p99_ns is None:
        return None
    tail = [b for _, b in valued if b.max_ns >= p99_ns]
    waited = sum(b.waited_ns for b in tail)
    return sum(b.init_ns for b in tail) / waited if waited else 0.0
