"""The ingest pipeline's bounds and timings, one frozen value shared by its parts."""

from __future__ import annotations

from dataclasses import dataclass

ROW_GROUP_SPANS = 122_880  # DuckDB's rows per row group
FAILURE_PAUSE_S = 0.2  # between tries of a failing log or store


@dataclass(frozen=True)
class PipelineLimits:
    # Room for a fold of ROW_GROUP_SPANS in progress, as many again logged behind it, and
    # 50,000 spans of slack: a fold takes ~0.7 s and a flood logs a row group in about that time.
    # Each span held costs ~500 bytes decoded, and under a flood the bound is full while DuckDB
    # holds the fold's row group (~1 KB a span). Without the slack the peak RSS was ~15-35 MiB
    # lower, but floods had requests refused (3-30 of 780, the queue full) where they had none
    # (bench/ingest.py, alternated). (Bytes are the requests' bodies and their decoded columns,
    # what they hold in memory; a fold also starts once half of max_queue_bytes waits.)
    max_queue_spans: int = 2 * ROW_GROUP_SPANS + 50_000
    max_queue_bytes: int = 256 * 1024 * 1024
    max_group_spans: int = 50_000
    # Logged spans go to the store once this many wait, or this long after the first of them
    # (readers fold sooner: they flush).
    fold_spans: int = ROW_GROUP_SPANS
    fold_interval_s: float = 30.0
    # How long the writer waits for more batches before logging a small group: each append
    # has its own fsync, so at moderate load a little waiting saves a few of them.
    linger_s: float = 0.05
    linger_until_spans: int = 2048
    # A group holding a bulk exporter's batch may wait longer (a small flush, say a Lambda's at
    # the end of an invocation, does not), but never once every active sender is waiting.
    bulk_spans: int = 512
    bulk_linger_s: float = 0.1
    active_sender_s: float = 1.0

    @property
    def fold_at_spans(self) -> int:
        """A fold starts while the bounds leave room for as much again behind it: a fold that
        waited for more than the bounds let in would wait for its interval, refusing all else."""
        return min(self.fold_spans, self.max_queue_spans // 2)
