"""The span ids committed lately, so a write can tell without a query that nothing in it is a resend.

Deduplication on (trace_id, span_id) asked DuckDB, on every write, to semi-join the group with
the stored spans of its time range: ~3.7 ms of a 512-span write's ~20 ms (bench/ingest.py). A
resent span repeats its start time, so a group whose spans all start at or after ``horizon_ns``
and whose span ids are none of the ids committed since can hold no resend: every stored span
starting at or after the horizon is in the set. Ids are forgotten oldest write first, past a
bound, and the horizon moves past the latest start of each forgotten write, which keeps that
true. After a restart the horizon starts past the newest stored span. A span id seen in another
trace only sends the write down the exact SQL path, so the answer never depends on chance.

Spans that start more than FUTURE_SLACK_NS after they are committed (a client clock running
ahead, or a hostile timestamp) are kept apart, exactly and until the horizon passes them:
otherwise forgetting one would move the horizon into the future, and every write would take
the SQL path until that time came. Past MAX_FUTURE_IDS of those, the fast path is given up.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

MAX_RECENT_IDS = 400_000  # 3.2 MB of ids; ~8 s of a 50k spans/s flood, three folds
FUTURE_SLACK_NS = 1_000_000_000
MAX_FUTURE_IDS = 100_000
NEVER_NS = 2**63 - 1
_logger = logging.getLogger(__name__)


class RecentSpanIds:
    """Span ids of the latest committed writes, and the start time from which they are complete.

    Each write's ids are kept as one sorted numpy array and looked up by binary search: a
    fold of 122,880 spans spent ~170 ms in Python sets and dicts of them, 1.4 us a span.
    """

    def __init__(self, horizon_ns: int, future: dict[int, int] | None = None, limit: int = MAX_RECENT_IDS) -> None:
        """`future`: span id -> start of stored spans that start after `horizon_ns` is past them."""
        self.horizon_ns = horizon_ns
        self._limit = limit
        self._future: dict[int, int] = dict(future or {})
        # (sorted span ids, latest start) of each remembered write, oldest first
        self._writes: deque[tuple[npt.NDArray[np.uint64], int]] = deque()
        self._count = 0

    def surely_new(self, spans: pa.Table) -> bool:
        """True when no span of `spans` can be stored already (False: ask the store)."""
        if pc.min(spans.column("start_ns")).as_py() < self.horizon_ns:
            return False
        ids = _span_ids(spans)
        if self._future and not self._future.keys().isdisjoint(ids.tolist()):
            return False
        return not any(_holds_any(known, ids) for known, _ in self._writes)

    def committed(self, spans: pa.Table, now_ns: int | None = None) -> None:
        """Remember a committed write's spans (every span it was given: a superset is safe)."""
        future_from_ns = (time.time_ns() if now_ns is None else now_ns) + FUTURE_SLACK_NS
        starts = spans.column("start_ns")
        if spans.num_rows and pc.max(starts).as_py() >= future_from_ns:
            ahead = pc.greater_equal(starts, future_from_ns)
            self._keep_future(spans.filter(ahead))
            spans = spans.filter(pc.invert(ahead))
        if spans.num_rows == 0:
            return
        ids = np.sort(_span_ids(spans))
        self._writes.append((ids, pc.max(spans.column("start_ns")).as_py()))
        self._count += len(ids)
        while self._count > self._limit and len(self._writes) > 1:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        # A later write's array still has any id the two share: nothing else to keep.
        ids, latest_start_ns = self._writes.popleft()
        self._count -= len(ids)
        self.horizon_ns = max(self.horizon_ns, latest_start_ns + 1)

    def _keep_future(self, spans: pa.Table) -> None:
        self._future.update(zip(spans.column("span_id").to_pylist(), spans.column("start_ns").to_pylist(), strict=True))
        if len(self._future) <= MAX_FUTURE_IDS:
            return
        # Those the horizon has passed are covered by it: a resend of one goes the SQL path.
        self._future = {span_id: start for span_id, start in self._future.items() if start >= self.horizon_ns}
        if len(self._future) > MAX_FUTURE_IDS:
            _logger.warning("over %d spans start in the future: resends are looked for in the store", MAX_FUTURE_IDS)
            self.horizon_ns, self._future = NEVER_NS, {}


def _span_ids(spans: pa.Table) -> npt.NDArray[np.uint64]:
    ids: npt.NDArray[np.uint64] = np.asarray(spans.column("span_id").to_numpy(), dtype=np.uint64)
    return ids


def _holds_any(known: npt.NDArray[np.uint64], ids: npt.NDArray[np.uint64]) -> bool:
    """Whether any of `ids` is in the sorted array `known`."""
    at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    return bool((known[at] == ids).any())
