"""The ledger of logged batches: what the ingest log holds that the store does not, yet.

The writer appends a group's records to the log and enters the group here in one step; the
folder takes everything entered, with the log's segments that hold it, in one step (so a fold
takes exactly the batches of the segments it seals, and drops exactly those once stored). Each
batch gets a sequence number as it is logged: a reader's flush waits until every batch up to
the last one logged is folded. Readers, the writer and the folder meet on :attr:`changed`.
"""

from __future__ import annotations

import threading

from collector.ingest.clock import Clock
from collector.ingest.ingest_log import IngestLog
from collector.ingest.pending import Pending


class Ledger:
    """Logged batches not yet folded, their sequence numbers, and the flushes waiting on them."""

    def __init__(self, log: IngestLog, clock: Clock) -> None:
        self._log = log
        self._clock = clock
        # Appends and what they hold change together, so a seal takes exactly what was appended.
        self._log_lock = threading.Lock()
        self.changed = threading.Condition()
        self._logged: list[Pending] = []
        self.logged_spans = 0
        self.logged_bytes = 0
        self.oldest_logged_at = 0.0  # on the clock, when the first of the logged batches was logged
        self._logged_seq = 0  # the last batch logged
        self._folded_seq = 0  # every batch up to this one is in the store
        self._flush_seq = 0  # readers wait for the batches up to this one
        self.fold_failures = 0
        self.appends_closed = False  # the writer has stopped: what is logged is all there will be

    @property
    def has_logged(self) -> bool:
        return bool(self._logged)

    @property
    def flush_wanted(self) -> bool:
        return self._flush_seq > self._folded_seq

    def replay(self) -> list[bytes]:
        """What the log holds from the last run (see IngestLog.replay); enter it with :meth:`enter`."""
        return self._log.replay()

    def append(self, group: list[Pending]) -> None:
        """Log the group's records (durable on return) and enter it; StoreUnavailable if the log failed."""
        records = [p.record for p in group if p.record is not None]
        with self._log_lock:
            if records:
                self._log.append(records)
            self.enter(group)

    def enter(self, group: list[Pending], flush: bool = False) -> None:
        """Hold batches as logged until folded (`flush`: fold them without waiting for a reason)."""
        with self.changed:
            if not self._logged:
                self.oldest_logged_at = self._clock.monotonic()
            for pending in group:
                pending.record = None  # logged: only the batch is needed now
                self._logged_seq += 1
                pending.seq = self._logged_seq
            self._logged.extend(group)
            self.logged_spans += sum(p.spans for p in group)
            self.logged_bytes += sum(p.byte_size for p in group)
            if flush:
                self._flush_seq = self._logged_seq
            self.changed.notify_all()

    def take(self) -> tuple[list[Pending], list[int]]:
        """Everything logged so far, and the log's sealed segments that hold it (StoreUnavailable
        if the log could not be sealed: nothing is taken)."""
        with self._log_lock:
            segments = self._log.seal()
            with self.changed:
                taken, self._logged, self.logged_spans, self.logged_bytes = self._logged, [], 0, 0
        return taken, segments

    def folded(self, taken: list[Pending], segments: list[int]) -> None:
        """The taken batches are in the store: drop their segments and wake readers waiting on them.
        StoreUnavailable if the segments could not be deleted (the batches count as folded:
        replaying their records stores nothing twice)."""
        try:
            self._log.drop(segments)
        finally:
            with self.changed:
                self._folded_seq = max(self._folded_seq, max((p.seq for p in taken), default=0))
                self.changed.notify_all()

    def put_back(self, taken: list[Pending], fold_interval_s: float) -> None:
        """A fold failed: its batches go back in front of newer ones, due at once."""
        with self.changed:
            if taken:
                self.logged_spans += sum(p.spans for p in taken)
                self.logged_bytes += sum(p.byte_size for p in taken)
                self._logged = taken + self._logged
                self.oldest_logged_at = self._clock.monotonic() - fold_interval_s
            self.fold_failures += 1
            self.changed.notify_all()

    def close_appends(self) -> None:
        with self.changed:
            self.appends_closed = True
            self.changed.notify_all()

    def wait_folded(self, timeout_s: float) -> None:
        """Ask for a fold and wait until every batch logged so far is folded, or a fold fails."""
        with self.changed:
            target = self._logged_seq
            if self._folded_seq >= target:
                return
            failures = self.fold_failures
            self._flush_seq = max(self._flush_seq, target)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self._folded_seq >= target or self.fold_failures > failures, timeout_s)
