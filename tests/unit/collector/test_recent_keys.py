"""RecentSpanIds: a write is called surely new only when no stored span can share a key with it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from collector.storage import recent_keys
from collector.storage.recent_keys import RecentSpanIds

SECOND = 1_000_000_000


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


def test_a_span_from_the_future_is_kept_apart_and_cannot_push_the_horizon_ahead() -> None:
    now = 1_000 * SECOND
    recent = RecentSpanIds(horizon_ns=0, limit=2)
    ahead = now + 3600 * SECOND  # a client clock an hour fast
    recent.committed(spans((1, now - SECOND), (2, ahead)), now_ns=now)
    recent.committed(spans((3, now), (4, now)), now_ns=now)  # past the limit: the first write is forgotten
    assert recent.horizon_ns == now - SECOND + 1  # moved past the forgotten write's present span only
    assert recent.surely_new(spans((5, now)))  # the fast path still serves the present
    assert not recent.surely_new(spans((2, ahead)))  # and the future span's resend is still known


def test_too_many_spans_from_the_future_give_the_fast_path_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent_keys, "MAX_FUTURE_IDS", 3)
    now = 1_000 * SECOND
    recent = RecentSpanIds(horizon_ns=0)
    recent.committed(spans(*[(n, now + 3600 * SECOND) for n in range(1, 6)]), now_ns=now)
    assert not recent.surely_new(spans((99, now)))  # every write asks the store now


def test_ids_are_found_in_any_remembered_write_and_an_empty_write_changes_nothing() -> None:
    recent = RecentSpanIds(horizon_ns=0, limit=1000)
    for first in (100, 1, 50):  # each write's ids unsorted, the writes out of order
        recent.committed(spans((first + 9, 5), (first, 5), (first + 3, 5)))
    recent.committed(spans())
    for seen in (1, 4, 10, 50, 53, 59, 100, 103, 109):
        assert not recent.surely_new(spans((2, 5), (seen, 5)))
    assert recent.surely_new(spans((0, 5), (2, 5), (51, 5), (110, 5), (2**64 - 1, 5)))
