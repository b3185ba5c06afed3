"""Time checked at the door: unbelievable spans are refused alone, by reason."""

from __future__ import annotations

import numpy as np

from collector.normalize.admission import TOO_LONG, TOO_NEW, TOO_OLD, TimeBounds, admit, refusals
from tests.factories import SECOND, at, spans_batch

NOW = 1_800_000_000 * SECOND
DAY = 86400 * SECOND
BOUNDS = TimeBounds(retention_s=7 * 86400, future_s=3600, max_duration_s=86400)
INT64_MAX = 2**63 - 1


def test_believable_spans_pass_untouched() -> None:
    batch = spans_batch(at(1, 1, None, 0, start_ns=NOW - 10 * SECOND, duration_ns=SECOND))
    admitted = admit(batch, BOUNDS, NOW)
    assert admitted.batch is batch and admitted.rejected_by_reason == {}


def test_each_unbelievable_span_is_refused_alone_with_its_reason() -> None:
    batch = spans_batch(
        at(1, 1, None, 0, start_ns=NOW - 10 * SECOND),
        at(1, 2, 1, 0, start_ns=NOW - 8 * DAY),  # older than the retention
        at(1, 3, 1, 0, start_ns=NOW + 7200 * SECOND),  # starts two hours ahead
        at(1, 4, 1, 0, start_ns=NOW, duration_ns=3599 * SECOND),  # fine: ends within the hour
        at(1, 5, 1, 0, start_ns=NOW, duration_ns=3601 * SECOND),  # ends past the hour
        at(1, 6, 1, 0, start_ns=NOW - 3 * DAY, duration_ns=2 * DAY),  # lasts two days
        at(1, 7, 1, 0, start_ns=INT64_MAX - 10, duration_ns=5),  # the overflow of the finding
        annotations=((3, "customer", "c1"), (1, "customer", "c2")),
        links=((7, 9, 9), (4, 8, 8)),
    )
    admitted = admit(batch, BOUNDS, NOW)
    assert admitted.batch.spans.column("span_id").to_pylist() == [1, 4]
    assert admitted.rejected_by_reason == {TOO_OLD: 1, TOO_NEW: 3, TOO_LONG: 1}
    assert admitted.batch.rejected == 5
    assert all(reason in admitted.batch.rejection_reason for reason in (TOO_OLD, TOO_NEW, TOO_LONG))
    assert admitted.batch.annotations.column("span_id").to_pylist() == [1]
    assert admitted.batch.links.column("span_id").to_pylist() == [4]


def test_no_start_or_duration_overflows_the_checks() -> None:
    starts = np.array([INT64_MAX, 0, INT64_MAX - 1, NOW], dtype=np.int64)
    durations = np.array([INT64_MAX, INT64_MAX, 1, INT64_MAX], dtype=np.int64)
    found = refusals(starts, durations, BOUNDS, NOW)
    assert found.mask.tolist() == [True, True, True, True]
    assert sum(found.counts.values()) == 4
