"""The folder: when to move logged batches into the store, the store write, and its retries.

It folds everything logged into the store in one transaction, then drops the log's segments
that held it. It folds once ``fold_spans`` are logged (a whole DuckDB row group: DuckDB then
writes it compressed straight to the file, with no copy in its own WAL and no recompression at
its next checkpoint: 13.5 -> 9.1% of a core for storing and linking a steady 10,000 spans/s, in
process against folds of a second's spans), when a reader flushes (so a query sees every span
acknowledged before it began), ``fold_interval_s`` after the oldest logged batch, and at stop;
sooner once half of a bound (spans or bytes) is logged, so the bounds never hold a fold back.
Folding on a thread of its own keeps DuckDB out of the acknowledgements: the writer goes on
appending to a new segment of the log meanwhile.

A failing store keeps what was logged (in memory and in the log), puts it back in front of
newer batches, and is retried every ``FAILURE_PAUSE_S`` until a fold succeeds. Periodic
housekeeping (retention) runs on this thread, between folds, so it never races one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.ingest.clock import Clock
from collector.ingest.health import Health
from collector.ingest.held_budget import HeldBudget
from collector.ingest.ledger import Ledger
from collector.ingest.limits import FAILURE_PAUSE_S, PipelineLimits
from collector.ingest.pending import Pending
from collector.ingest.periodic import PeriodicTask, any_due, next_due, run_due, schedule_from
from collector.metrics import CollectorMetrics
from collector.storage.protocols import SpanWriter, StoreUnavailable

_logger = logging.getLogger(__name__)
IDLE_WAKE_S = 1.0


class Folder:
    """Folds the ledger's batches into the store on a thread of its own, ``fluoro-folder``."""

    def __init__(
        self,
        ledger: Ledger,
        store: SpanWriter,
        budget: HeldBudget,
        health: Health,
        metrics: CollectorMetrics,
        limits: PipelineLimits,
        periodic: tuple[PeriodicTask, ...],
        clock: Clock,
        after_fold: Callable[[], None],
    ) -> None:
        """`after_fold` runs on the folder's thread once a fold's batches are let go
        (process_heap.release_free_heap: their memory back to the kernel)."""
        self._ledger = ledger
        self._store = store
        self._budget = budget
        self._health = health
        self._metrics = metrics
        self._limits = limits
        self._periodic = list(periodic)
        self._clock = clock
        self._after_fold = after_fold
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="fluoro-folder", daemon=True)

    def start(self) -> None:
        schedule_from(self._periodic, self._clock.monotonic())
        self._thread.start()

    def join(self, timeout_s: float) -> bool:
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def flush(self, timeout_s: float) -> None:
        """Wait until every batch logged so far is in the store (or a fold fails)."""
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            return  # a periodic task reading the store, or nobody left to fold
        self._ledger.wait_folded(timeout_s)

    def fold_due(self, now: float) -> bool:
        """With the ledger's lock held: whether the logged batches go to the store now."""
        ledger, limits = self._ledger, self._limits
        if not ledger.has_logged or now < self._retry_at:
            return False
        return (
            ledger.logged_spans >= limits.fold_at_spans
            or ledger.logged_bytes >= limits.max_queue_bytes // 2
            or ledger.flush_wanted
            or now >= ledger.oldest_logged_at + limits.fold_interval_s
        )

    def _run(self) -> None:
        ledger = self._ledger
        while True:
            with ledger.changed:
                while not self._has_work(now := self._clock.monotonic()):
                    self._clock.wait(ledger.changed, self._seconds_to_wake(now))
                final = ledger.appends_closed
                if final and not ledger.has_logged:
                    return
                due = final or self.fold_due(now)
            if due and not self._fold() and final:
                _logger.error("%d acknowledged spans stay in the ingest log until the next start", ledger.logged_spans)
                return
            run_due(self._periodic, self._clock.monotonic())

    def _has_work(self, now: float) -> bool:
        return self._ledger.appends_closed or self.fold_due(now) or any_due(self._periodic, now)

    def _seconds_to_wake(self, now: float) -> float:
        wake_at = next_due(self._periodic, now + IDLE_WAKE_S)
        if self._ledger.has_logged:
            fold_at = max(self._retry_at, self._ledger.oldest_logged_at + self._limits.fold_interval_s)
            wake_at = min(wake_at, fold_at)
        return max(0.0, wake_at - now)

    def _fold(self) -> bool:
        """Store what was logged; once its batches are let go, the after-fold step."""
        if not self._store_logged():
            return False
        self._after_fold()
        return True

    def _store_logged(self) -> bool:
        """Write every logged batch to the store in one transaction, then drop their log segments."""
        try:
            taken, segments = self._ledger.take()
        except StoreUnavailable as exc:  # the log could not be sealed: fold later, nothing is lost
            self._failed(str(exc), [])
            return False
        started_s = time.perf_counter()
        try:
            stored = self._store.write([p.batch for p in taken])
        except StoreUnavailable as exc:
            self._failed(str(exc), taken)
            return False
        except Exception as exc:
            _logger.exception("unexpected error writing spans")
            self._failed(f"internal error: {exc}", taken)
            return False
        self._metrics.commit_seconds.observe(time.perf_counter() - started_s)
        self._metrics.stored.inc(stored)
        self._budget.give_back(sum(p.spans for p in taken), sum(p.byte_size for p in taken))
        self._health.store_reported(None)
        try:
            self._ledger.folded(taken, segments)
        except StoreUnavailable as exc:  # their records are stored: a replay adds nothing
            _logger.warning("%s", exc)
        return True

    def _failed(self, error: str, taken: list[Pending]) -> None:
        """Refuse new batches until a fold succeeds; try again after a pause."""
        self._health.store_reported(error)
        self._retry_at = self._clock.monotonic() + FAILURE_PAUSE_S
        self._ledger.put_back(taken, self._limits.fold_interval_s)
