"""Percentiles from latency buckets: exact for distinct-value buckets, else within a bucket."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from collector.query.figures import FigureAccumulator
from collector.storage.map_sql import BUCKETS_PER_DECADE


def accumulate(values_ns: list[int], into: FigureAccumulator | None = None) -> FigureAccumulator:
    """Bucket rows as map_sql's figure columns would give them, built here from raw values; with
    `into`, added to rows already there (as the map adds rolled-up minutes to raw calls)."""
    rows: dict[int, list[int]] = {}
    for value in values_ns:
        bucket = math.floor(math.log10(max(value, 1000) / 1e6) * BUCKETS_PER_DECADE)
        rows.setdefault(bucket, []).append(value)
    acc = into if into is not None else FigureAccumulator()
    for bucket, members in rows.items():
        n = len(members)
        acc.add([bucket, n, n, 0, 0, 0, 0, 0, sum(members), min(members), max(members), n])
    return acc


def test_few_distinct_values_give_duckdbs_quantile_cont_exactly() -> None:
    values = [100_000_000, 200_000_000, 200_000_000, 800_000_000]
    acc = accumulate(values)
    for q in (0.0, 0.25, 0.5, 0.9, 0.99, 1.0):
        assert acc.percentile_ms(q) == pytest.approx(float(np.quantile(values, q)) / 1e6)


@pytest.mark.parametrize("seed", range(5))
def test_many_values_are_within_one_bucket_of_the_exact_percentile(seed: int) -> None:
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(math.log(30e6), 1.2)) for _ in range(5000)]
    acc = accumulate(values)
    bucket_ratio = 10 ** (1 / BUCKETS_PER_DECADE)
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(values, q)) / 1e6
        assert exact / bucket_ratio <= acc.percentile_ms(q) <= exact * bucket_ratio  # type: ignore[operator]


def test_adding_rows_from_two_parts_is_exact() -> None:
    a = accumulate([10_000_000, 20_000_000])
    accumulate([40_000_000], into=a)
    assert a.requests == 3 and a.percentile_ms(0.5) == pytest.approx(20.0)
    assert sum(n for *_, n in a.figures().histogram) == 3


def test_no_requests_no_percentiles() -> None:
    figures = FigureAccumulator().figures()
    assert figures.p50_ms is None and figures.health == "ok" and figures.rate(1) == 0.0


def test_head_sampled_calls_stand_for_their_weight_and_tail_kept_ones_for_none() -> None:
    # 1% head sampling: two sampled calls of 100 ms and 120 ms (weight 100 each); tail-keep kept
    # three failed calls of 5 s (weight 0): 200 requests happened, 3 of them faults.
    acc = FigureAccumulator()
    acc.add_counts(2, 2, 0, 0, 0, 0, 200.0)
    acc.add_counts(3, 0, 0, 3, 0, 0, 0.0)
    acc.add_bucket(10, 2, 0, 220_000_000, 100_000_000, 120_000_000, 200.0)
    acc.add_bucket(37, 3, 0, 15_000_000_000, 5_000_000_000, 5_000_000_000, 0.0)
    figures = acc.figures()
    assert (figures.requests, figures.stored_requests, figures.faults, figures.ok) == (200, 5, 3, 197)
    assert figures.rate(figures.faults) == 3 / 200
    assert figures.p99_ms is not None and figures.p99_ms <= 120.0  # the kept failures do not skew the tail
    assert sum(n for _, _, n in figures.histogram) == 200


def test_without_a_head_sampled_call_the_stored_calls_are_all_there_is() -> None:
    acc = FigureAccumulator()
    acc.add_counts(3, 0, 0, 3, 0, 0, 0.0)  # head sampling kept nothing; tail-keep kept three faults
    acc.add_bucket(37, 3, 0, 15_000_000_000, 5_000_000_000, 5_000_000_000, 0.0)
    figures = acc.figures()
    assert (figures.requests, figures.faults, figures.ok, figures.p50_ms) == (3, 3, 0, 5000.0)
