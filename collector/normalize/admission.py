"""Time checked at the door: a span whose time cannot be real is refused alone, with its reason.

Every later stage does arithmetic on span times: linking adds durations to starts, the rollup
buckets them by minute, retention compares them with now. Two spans starting near INT64_MAX
once overflowed that arithmetic and stopped the service map for everyone. So each decoded batch,
whatever its protocol, passes here before it is logged: a span must start within
[now - retention, now + 1 h], end within an hour from now, and last at most a day (decoders
already refuse one that ends before it starts). The rest of the request is kept (partial
success); rejections are counted by reason in /metrics.

Replay at start uses the replay's clock: a span acknowledged an hour before retention removes it
may be dropped then, as retention would have, never anything newer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.model import SpanBatch

NS_PER_S = 1_000_000_000
TOO_OLD = "start time is older than the retention"
TOO_NEW = "start or end time is more than an hour ahead of the collector's clock"
TOO_LONG = "a span may last at most a day"
LOG_TOO_OLD = "log time is older than the retention"
LOG_TOO_NEW = "log time is more than an hour ahead of the collector's clock"
REASONS = (TOO_OLD, TOO_NEW, TOO_LONG, LOG_TOO_OLD, LOG_TOO_NEW)


@dataclass(frozen=True)
class TimeBounds:
    """Which span times are believable, relative to the collector's clock."""

    retention_s: float = 7 * 24 * 3600
    future_s: float = 3600
    max_duration_s: float = 24 * 3600


@dataclass(frozen=True)
class Admitted:
    """The batch of the spans let in, and how many of the others failed each check."""

    batch: SpanBatch
    rejected_by_reason: dict[str, int]


@dataclass(frozen=True)
class Refusals:
    """Which spans of a run fail the time checks (`mask`), and how many fail each, by reason."""

    mask: np.ndarray
    counts: dict[str, int]


def refusals(start_ns: np.ndarray, duration_ns: np.ndarray, bounds: TimeBounds, now_ns: int) -> Refusals:
    """The time checks, over columns of int64 starts and durations (every receiver's one rule)."""
    oldest_ns = now_ns - int(bounds.retention_s * NS_PER_S)
    newest_ns = now_ns + int(bounds.future_s * NS_PER_S)
    too_old = start_ns < oldest_ns
    # duration <= newest - start, written so that nothing overflows for any int64 start
    too_new = ~too_old & ((start_ns > newest_ns) | (duration_ns > newest_ns - np.minimum(start_ns, newest_ns)))
    too_long = ~too_old & ~too_new & (duration_ns > int(bounds.max_duration_s * NS_PER_S))
    mask = too_old | too_new | too_long
    if not mask.any():
        return Refusals(mask, {})
    counts = {TOO_OLD: int(too_old.sum()), TOO_NEW: int(too_new.sum()), TOO_LONG: int(too_long.sum())}
    return Refusals(mask, {reason: n for reason, n in counts.items() if n})


def within_bounds(earliest_ns: int, latest_ns: int, longest_ns: int, bounds: TimeBounds, now_ns: int) -> bool:
    """Whether every span of a run surely passes: its earliest start, its latest start plus its
    longest duration, and that duration are all within bounds (a sufficient test, not a needed one)."""
    newest_ns = now_ns + int(bounds.future_s * NS_PER_S)
    return (
        earliest_ns >= now_ns - int(bounds.retention_s * NS_PER_S)
        and latest_ns + longest_ns <= newest_ns
        and longest_ns <= int(bounds.max_duration_s * NS_PER_S)
    )


def admit(batch: SpanBatch, bounds: TimeBounds, now_ns: int) -> Admitted:
    """`batch` less its spans whose times are not believable (with their annotations and links),
    and its log records whose times are not."""
    if batch.logs.num_rows:
        return _admit_logs(batch, bounds, now_ns)
    if batch.span_count == 0:
        return Admitted(batch, {})
    start = batch.spans.column("start_ns").to_numpy()
    duration = batch.spans.column("duration_ns").to_numpy()
    if within_bounds(int(start.min()), int(start.max()), int(duration.max()), bounds, now_ns):
        return Admitted(batch, {})  # the usual case, told from three numbers (Python ints: no overflow)
    refused = refusals(start, duration, bounds, now_ns)
    if not refused.counts:
        return Admitted(batch, {})
    return Admitted(without_spans(batch, refused.mask, refused.counts), refused.counts)


def _admit_logs(batch: SpanBatch, bounds: TimeBounds, now_ns: int) -> Admitted:
    time_ns = batch.logs.column("time_ns").to_numpy()
    too_old = time_ns < now_ns - int(bounds.retention_s * NS_PER_S)
    too_new = time_ns > now_ns + int(bounds.future_s * NS_PER_S)
    refused = too_old | too_new
    if not refused.any():
        return Admitted(batch, {})
    counts = {LOG_TOO_OLD: int(too_old.sum()), LOG_TOO_NEW: int(too_new.sum())}
    counts = {reason: n for reason, n in counts.items() if n}
    reasons = [r for r in batch.rejection_reason.split("; ") if r] + list(counts)
    kept = SpanBatch(
        spans=batch.spans,
        annotations=batch.annotations,
        links=batch.links,
        rejected=batch.rejected + int(refused.sum()),
        rejection_reason="; ".join(reasons[:5]),
        logs=batch.logs.filter(pa.array(~refused)),
    )
    return Admitted(kept, counts)


def without_spans(batch: SpanBatch, refused: np.ndarray, counts: dict[str, int]) -> SpanBatch:
    kept = pa.array(~refused)
    refused_ids = batch.spans.column("span_id").filter(pa.array(refused))
    reasons = [r for r in batch.rejection_reason.split("; ") if r] + [
        r for r in counts if r not in batch.rejection_reason
    ]
    return SpanBatch(
        spans=batch.spans.filter(kept),
        annotations=_not_of(batch.annotations, refused_ids),
        links=_not_of(batch.links, refused_ids),
        rejected=batch.rejected + int(refused.sum()),
        rejection_reason="; ".join(reasons[:5]),
    )


def _not_of(table: pa.Table, span_ids: pa.ChunkedArray) -> pa.Table:
    """Rows of `table` whose span is not one of `span_ids`."""
    if table.num_rows == 0:
        return table
    return table.filter(pc.invert(pc.is_in(table.column("span_id"), value_set=span_ids.combine_chunks())))
