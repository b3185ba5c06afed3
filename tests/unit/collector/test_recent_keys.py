"""RecentSpanIds: a write is called surely new only when no stored span can share a key with it."""

from __future__ import annotations

import pyarrow as pa

from collector.storage.recent_keys import RecentSpanIds


def spans(*pairs: tuple[int, int]) -> pa.Table:
    """(span_id, start_ns) pairs."""
    return pa.table(
        {
            "span_id": pa.array([p[0] for p in pairs], pa.uint64()),
            "start_ns": pa.array([p[1] for p in pairs], pa.int64()),
        }
    )


def test_ids_seen_since_the_horizon_are_not_new_and_others_are() -> None:
    recent = RecentSpanIds(horizon_ns=100)
    assert recent.surely_new(spans((1, 100), (2, 150)))
    recent.committed(spans((1, 100), (2, 150)))
    assert not recent.surely_new(spans((2, 150)))  # a resend
    assert recent.surely_new(spans((3, 150)))
    assert not recent.surely_new(spans((4, 99)))  # older than what the set covers: ask the store


def test_forgetting_a_write_moves_the_horizon_past_it_and_keeps_ids_later_writes_had() -> None:
    recent = RecentSpanIds(horizon_ns=0, limit=3)
    recent.committed(spans((1, 10), (2, 20)))
    recent.committed(spans((2, 20), (3, 30)))  # 4 ids remembered > 3: the first write is forgotten
    assert recent.horizon_ns == 21
    assert not recent.surely_new(spans((2, 25)))  # still known through the second write
    assert not recent.surely_new(spans((1, 10)))  # forgotten, but before the horizon
    assert recent.surely_new(spans((1, 40)))
