"""The ingest pipeline: a bounded queue in front of one writer thread, an ingest log, and DuckDB.

Receivers submit normalized batches, each with the record that reproduces it (an OTLP
request's body); the writer thread takes everything waiting (up to ``max_group_spans``),
appends their records to the ingest log (fsync'd, see ingest_log.py) and only then reports
each batch done, so an OTLP request is answered 200 only once its spans are durable. A batch
without a record (X-Ray's UDP: nobody waits for an answer) is held in memory only.
About once a second (``fold_interval_s``, sooner past ``fold_spans``) it folds everything the
log holds into the store in one transaction and empties the log: a DuckDB commit costs the
same few milliseconds for ten rows or ten thousand. Readers call :meth:`flush` first, so a
query sees every span acknowledged before it began.

Everything held in memory (waiting or logged and not yet folded) is bounded in spans and in
bytes: when it is full, or the pipeline is stopping, ``submit`` refuses at once and the
receiver answers 503 with Retry-After, rather than buffering without bound. A failing log or
store fails the batches given to it (their requests get 503 and are retried by the client)
and marks the pipeline unhealthy until an append and a fold succeed again; logged batches are
never dropped, they wait for the store to come back (or, across a restart, in the log).
Periodic housekeeping (retention) runs on the same thread, so it never races a write. A
small group lingers up to ``linger_s`` for company before it is logged, to share an fsync.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from collector.active_senders import ActiveSenders
from collector.ingest_log import IngestLog
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.storage.protocols import SpanWriter, StoreUnavailable

_logger = logging.getLogger(__name__)
FAILURE_PAUSE_S = 0.2


@dataclass(frozen=True)
class WriteOutcome:
    """How one submitted batch ended: made durable (its spans count) or failed (the reason)."""

    spans: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PipelineLimits:
    max_queue_spans: int = 200_000
    max_queue_bytes: int = 256 * 1024 * 1024
    max_group_spans: int = 50_000
    # Logged spans are folded into the store this often, or as soon as this many wait. A fold
    # holds up the acknowledgements behind it (~5 us a span): at 50,000 spans a flood's p99
    # was ~370 ms, at 20,000 ~190 ms, for ~2% less throughput (bench/ingest.py).
    fold_interval_s: float = 1.0
    fold_spans: int = 20_000
    # How long the writer waits for more batches before logging a small group: each append
    # has its own fsync, so at moderate load a little waiting saves a few of them.
    linger_s: float = 0.05
    linger_until_spans: int = 2048
    # A group holding a bulk exporter's batch may wait longer (a small flush, say a Lambda's at
    # the end of an invocation, does not), but never once every active sender is waiting.
    bulk_spans: int = 512
    bulk_linger_s: float = 0.1
    active_sender_s: float = 1.0


@dataclass
class _Pending:
    batch: SpanBatch
    byte_size: int
    done: Callable[[WriteOutcome], None]
    sender: Hashable | None = None
    record: bytes | None = None


@dataclass
class PeriodicTask:
    """Work the writer thread runs every `interval_s` seconds."""

    interval_s: float
    run: Callable[[], None]
    due_at: float = 0.0


class IngestPipeline:
    """Bounded queue + single writer: log and acknowledge each group, fold into the store."""

    def __init__(
        self,
        writer: SpanWriter,
        log: IngestLog,
        decode_record: Callable[[bytes], SpanBatch],
        metrics: CollectorMetrics,
        limits: PipelineLimits = PipelineLimits(),
        periodic: tuple[PeriodicTask, ...] = (),
    ) -> None:
        self._writer = writer
        self._log = log
        self._decode_record = decode_record
        self._metrics = metrics
        self._limits = limits
        self._periodic = list(periodic)
        self._queue: deque[_Pending] = deque()
        self._logged: list[_Pending] = []  # acknowledged, not yet folded into the store
        self._logged_spans = 0
        self._fold_at = 0.0  # monotonic time the logged batches are due in the store
        self._folds_tried = 0
        self._fold_failing = False
        self._queued_spans = 0  # waiting and logged: all that is held in memory
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._senders = ActiveSenders(limits.active_sender_s)
        self._accepting = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fluoro-writer", daemon=True)
        self.healthy = True
        self.last_error: str | None = None
        metrics.watch_queue(lambda: self._queued_spans, lambda: self._queued_bytes)

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def start(self) -> None:
        """Take back what the log holds from the last run (it is folded first), then accept."""
        replayed = self._replayed()
        if replayed:
            spans = sum(p.batch.span_count for p in replayed)
            _logger.info("ingest log: %d spans acknowledged in the last run go to the store", spans)
            self._queued_spans += spans
            self._queued_bytes += sum(p.byte_size for p in replayed)
            self._hold(replayed)
            self._fold_at = 0.0
        self._accepting = True
        now = time.monotonic()
        for task in self._periodic:
            task.due_at = now + task.interval_s
        self._thread.start()

    def _replayed(self) -> list[_Pending]:
        held = []
        for record in self._log.replay():
            try:
                batch = self._decode_record(record)
            except Exception:  # it decoded when it came in: only a changed decoder gets here
                _logger.exception("a record of the ingest log could not be decoded; its spans are lost")
                continue
            held.append(_Pending(batch, len(record), _ignore))
        return held

    def submit(
        self,
        batch: SpanBatch,
        byte_size: int,
        done: Callable[[WriteOutcome], None],
        sender: Hashable | None = None,
        record: bytes | None = None,
    ) -> bool:
        """Queue a batch; False (and `done` is never called) when full or stopping. `sender`: the
        client connection it came from, if known (see active_senders.py); `record`: what to log
        (``decode_record(record)`` gives the batch again), None for a batch nobody waits on."""
        spans = batch.span_count
        with self._cond:
            if not self._accepting:
                return False
            over_spans = self._queued_spans + spans > self._limits.max_queue_spans
            over_bytes = self._queued_bytes + byte_size > self._limits.max_queue_bytes
            if (self._queue or self._logged) and (over_spans or over_bytes):
                return False
            self._queue.append(_Pending(batch, byte_size, done, sender, record))
            if sender is not None:
                self._senders.saw(sender)
            self._queued_spans += spans
            self._queued_bytes += byte_size
            self._cond.notify()
        return True

    async def write(self, batch: SpanBatch, record: bytes, sender: Hashable | None = None) -> WriteOutcome | None:
        """Submit and wait until the batch is durable (its record logged); None when the queue refused it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteOutcome] = loop.create_future()

        def done(outcome: WriteOutcome) -> None:
            loop.call_soon_threadsafe(_resolve, future, outcome)

        if not self.submit(batch, len(record), done, sender, record):
            return None
        return await future

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every batch acknowledged so far has been offered to the store (a fold
        that fails ends the wait too: the reader then sees the store as it is)."""
        with self._cond:
            if not self._logged or threading.current_thread() is self._thread or not self._thread.is_alive():
                return
            # Nothing is logged while a fold runs, so the next fold to end covers all logged now.
            tried = self._folds_tried
            self._fold_at = 0.0
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._folds_tried > tried, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Refuse new batches, log and fold everything queued, stop the thread; True if drained in time."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _take_group(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait(timeout=self._seconds_to_wake())
                if not self._queue and not self._stopping:
                    return []
            self._linger()
            group: list[_Pending] = []
            spans = 0
            while self._queue and (
                not group or spans + self._queue[0].batch.span_count <= self._limits.max_group_spans
            ):
                pending = self._queue.popleft()
                group.append(pending)
                spans += pending.batch.span_count
            return group

    def _linger(self) -> None:
        """With the lock held: wait briefly for a small group to grow (not while stopping)."""
        limits = self._limits
        started = time.monotonic()
        while not self._stopping and (waiting := self._queued_spans - self._logged_spans) < limits.linger_until_spans:
            senders = [p.sender for p in self._queue]
            if None not in senders and self._senders.all_waiting(senders):
                return  # every sender is waiting on this group: nothing more can come
            bulk = waiting >= limits.bulk_spans
            remaining = started + (limits.bulk_linger_s if bulk else limits.linger_s) - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _seconds_to_wake(self) -> float | None:
        due = [task.due_at for task in self._periodic]
        if self._logged:
            due.append(self._fold_at)
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _run(self) -> None:
        while True:
            group = self._take_group()
            if group is None:
                break
            if group:
                self._log_group(group)
            if self._logged and (time.monotonic() >= self._fold_at or self._logged_spans >= self._limits.fold_spans):
                self._fold()
            self._run_due_tasks()
        if self._logged and not self._fold():
            _logger.error("%d acknowledged spans stay in the ingest log until the next start", self._logged_spans)

    def _log_group(self, group: list[_Pending]) -> None:
        """Append the group to the log and acknowledge it; refuse it while the store is failing."""
        error = None
        if self._fold_failing and not self._fold():
            error = self.last_error  # hold no more in memory until the store takes what it has
        else:
            records = [p.record for p in group if p.record is not None]
            try:
                if records:
                    self._log.append(records)
            except StoreUnavailable as exc:
                error = str(exc)
        if error is not None:
            self._set_health(error)
            self._release(group)
            for pending in group:
                pending.done(WriteOutcome(0, error))
            time.sleep(FAILURE_PAUSE_S)
            return
        if not self._fold_failing:
            self._set_health(None)
        for pending in group:
            pending.record = None  # logged: only the batch is needed now
        self._hold(group)
        for pending in group:
            pending.done(WriteOutcome(pending.batch.span_count))

    def _fold(self) -> bool:
        """Write every logged batch to the store in one transaction, then empty the log."""
        started = time.perf_counter()
        error = None
        try:
            stored = self._writer.write([p.batch for p in self._logged])
        except StoreUnavailable as exc:
            error = str(exc)
        except Exception as exc:
            _logger.exception("unexpected error writing spans")
            error = f"internal error: {exc}"
        if error is None:
            self._metrics.commit_seconds.observe(time.perf_counter() - started)
            self._metrics.stored.inc(stored)
            try:
                self._log.clear()
            except StoreUnavailable as exc:  # its records are stored: a replay adds nothing
                _logger.warning("%s", exc)
        self._fold_failing = error is not None
        self._set_health(error)
        with self._cond:
            if error is None:
                self._release(self._logged)
                self._logged, self._logged_spans = [], 0
            else:
                self._fold_at = time.monotonic() + FAILURE_PAUSE_S
            self._folds_tried += 1
            self._cond.notify_all()
        return error is None

    def _hold(self, group: list[_Pending]) -> None:
        """Keep logged batches (their spans and bytes stay counted) until they are folded."""
        with self._cond:
            if not self._logged:
                self._fold_at = time.monotonic() + self._limits.fold_interval_s
            self._logged.extend(group)
            self._logged_spans += sum(p.batch.span_count for p in group)

    def _release(self, group: list[_Pending]) -> None:
        with self._cond:
            for pending in group:
                self._queued_spans -= pending.batch.span_count
                self._queued_bytes -= pending.byte_size

    def _set_health(self, error: str | None) -> None:
        if error is None and not self.healthy:
            _logger.warning("store recovered; ingest resumed")
        elif error is not None and self.healthy:
            _logger.error("store failing, batches refused until it recovers: %s", error)
        self.healthy, self.last_error = error is None, error

    def _run_due_tasks(self) -> None:
        run_due(self._periodic)


def run_due(tasks: list[PeriodicTask]) -> None:
    """Run the tasks whose time has come; one that raises is logged and tried again next time."""
    now = time.monotonic()
    for task in tasks:
        if now >= task.due_at:
            task.due_at = now + task.interval_s
            try:
                task.run()
            except StoreUnavailable as exc:  # expected while a disk is full or failing: one line
                _logger.warning("periodic task failed: %s", exc)
            except Exception:
                _logger.exception("periodic task failed")


def _ignore(outcome: WriteOutcome) -> None:
    """A replayed batch's request was answered in the last run."""


def _resolve(future: asyncio.Future[WriteOutcome], outcome: WriteOutcome) -> None:
    if not future.done():
        future.set_result(outcome)
