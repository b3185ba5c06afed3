"""The acknowledging writer: a queue of submitted batches, logged in groups, each answered once durable.

Its thread takes everything waiting (up to ``max_group_spans``), appends their records to the
ingest log through the ledger (fsync'd) and only then reports each batch done, so an OTLP
request is answered 200 only once its spans are durable. A small group lingers for
company first, up to ``linger_s`` after its oldest batch came, to share an fsync, but not once
every active sender is waiting on it (nothing more can come: active_senders.py), nor for
senders of heavy requests. While the
log or the store fails, groups are refused (their submitters told why) a pause apart.
"""

from __future__ import annotations

import threading
from collections import deque

from collector.ingest.active_senders import ActiveSenders
from collector.ingest.clock import Clock
from collector.ingest.health import Health
from collector.ingest.held_budget import HeldBudget
from collector.ingest.ledger import Ledger
from collector.ingest.limits import FAILURE_PAUSE_S, PipelineLimits
from collector.ingest.pending import Pending, acknowledge
from collector.storage.protocols import StoreUnavailable


class AckWriter:
    """Queue, linger, log append, acknowledgement: one thread, ``fluoro-writer``."""

    def __init__(
        self, ledger: Ledger, budget: HeldBudget, health: Health, limits: PipelineLimits, clock: Clock
    ) -> None:
        self._ledger = ledger
        self._budget = budget
        self._health = health
        self._limits = limits
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[Pending] = deque()
        self._waiting_spans = 0
        self._senders = ActiveSenders(limits.active_sender_s)
        self._accepting = True  # batches wait in the queue until start
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fluoro-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, pending: Pending) -> bool:
        """Queue a batch; False when the bounds are full or the writer is stopping."""
        with self._cond:
            if not self._accepting:
                return False
            if not self._budget.try_take(pending.spans, pending.byte_size):
                if pending.sender is not None:
                    self._senders.refused(pending.sender)
                    self._cond.notify_all()  # a group lingering for it is due now
                return False
            pending.queued_at = self._clock.monotonic()
            self._queue.append(pending)
            self._waiting_spans += pending.spans
            if pending.sender is not None:
                record_bytes = len(pending.record) if pending.record is not None else 0
                self._senders.saw(pending.sender, record_bytes, pending.queued_at)
            self._cond.notify_all()
        return True

    def stop(self) -> None:
        """Refuse new batches; the thread logs what is queued, without lingering, and ends."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()

    def join(self, timeout_s: float) -> bool:
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (group := self._next_group()) is not None:
            self._log(group)
            del group  # the ledger holds what it needs; held here, a fold could not let the batches go
        self._ledger.close_appends()  # the folder folds what is left, then ends

    def _next_group(self) -> list[Pending] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._clock.wait(self._cond, None)
            while (left_s := self.linger_left_s(self._clock.monotonic())) > 0:
                self._clock.wait(self._cond, left_s)
            return self.pop_group()

    def linger_left_s(self, now: float) -> float:
        """With the lock held: how much longer the waiting group lingers (<= 0: log it now).
        A group waits for company at most its linger after its oldest batch was submitted."""
        limits = self._limits
        if self._stopping or self._waiting_spans >= limits.linger_until_spans:
            return 0.0
        senders = [p.sender for p in self._queue]
        if None not in senders and self._senders.all_waiting(senders, now):
            return 0.0  # every sender is waiting on this group: nothing more can come
        linger_s = limits.bulk_linger_s if self._waiting_spans >= limits.bulk_spans else limits.linger_s
        return self._queue[0].queued_at + linger_s - now

    def pop_group(self) -> list[Pending]:
        """With the lock held: the waiting batches the next append takes (up to max_group_spans)."""
        group: list[Pending] = []
        spans = 0
        while self._queue and (not group or spans + self._queue[0].spans <= self._limits.max_group_spans):
            pending = self._queue.popleft()
            group.append(pending)
            spans += pending.spans
        self._waiting_spans -= spans
        return group

    def _log(self, group: list[Pending]) -> None:
        """Append the group to the log and acknowledge it; refuse it while the store is failing."""
        error = self._health.store_error  # hold no more until the store takes what it has
        if error is None:
            try:
                self._ledger.append(group)
            except StoreUnavailable as exc:
                error = str(exc)
            self._health.log_reported(error)
        if error is None:
            acknowledge(group)
            return
        self._budget.give_back(sum(p.spans for p in group), sum(p.byte_size for p in group))
        acknowledge(group, error)
        self._clock.sleep(FAILURE_PAUSE_S)
