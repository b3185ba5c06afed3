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
        acc.add([bucket, n, n, 0, 0, 0, 0, 0, sum(members), min(members), max(members)])
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
