"""The ingest pipeline: a bounded queue, a writer thread that logs, a folder thread that stores.

Receivers submit normalized batches, each with the record that reproduces it (an OTLP
request's body). The writer thread takes everything waiting (up to ``max_group_spans``),
appends their records to the ingest log (fsync'd, see ingest_log.py) and only then reports
each batch done, so an OTLP request is answered 200 only once its spans are durable. A batch
without a record (X-Ray's UDP: nobody waits for an answer) is held in memory only.

The folder thread writes what was logged into the store in one transaction, then drops the
log's segments that held it. It folds once ``fold_spans`` are logged (a whole DuckDB row group:
DuckDB then writes it compressed straight to the file, with no copy in its own WAL and no
recompression at its next checkpoint: 13.5 -> 9.1% of a core for storing and linking a steady
10,000 spans/s, in process against folds of a second's spans), when a reader calls
:meth:`flush` (so a query sees every span acknowledged before it began), ``fold_interval_s``
after the oldest logged batch, and at stop; sooner once half of a bound (spans or bytes) is
logged, so the bounds never hold a fold back. Folding on a thread of its own keeps DuckDB out
of the acknowledgements: the writer seals the log's open segment for the fold and goes on
appending to a new one.

Everything held in memory (waiting, logged, folding) is bounded in spans and in bytes: when it
is full, or the pipeline is stopping, ``submit`` refuses at once and the receiver answers 503
with Retry-After, rather than buffering without bound. A failing log fails the batches given to
it; a failing store keeps what was logged (in memory and in the log), refuses new batches and
marks the pipeline unhealthy until a fold succeeds again (retried every ``FAILURE_PAUSE_S``).
Periodic housekeeping (retention) runs on the folder thread, so it never races a fold. A small
group lingers up to ``linger_s`` for company before it is logged, to share an fsync, but not
for senders of heavy requests (active_senders.py), which are never back within a linger.
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
ROW_GROUP_SPANS = 122_880  # DuckDB's rows per row group


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
    # Room for a fold of ROW_GROUP_SPANS in progress and as many again logged behind it.
    # (Bytes are the requests' bodies and their decoded columns, what they hold in memory; a fold
    # also starts once half of max_queue_bytes waits.)
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


@dataclass
class _Pending:
    batch: SpanBatch
    byte_size: int
    done: Callable[[WriteOutcome], None]
    sender: Hashable | None = None
    record: bytes | None = None
    seq: int = 0  # order of logging, from 1


@dataclass
class PeriodicTask:
    """Work a pipeline thread runs every `interval_s` seconds."""

    interval_s: float
    run: Callable[[], None]
    due_at: float = 0.0


class IngestPipeline:
    """Bounded queue + a writer that logs and acknowledges + a folder that stores."""

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
        # A fold starts while the bounds leave room for as much again behind it: a fold that
        # waited for more than the bounds let in would wait for its interval, refusing all else.
        self._fold_spans = min(limits.fold_spans, limits.max_queue_spans // 2)
        self._periodic = list(periodic)
        self._queue: deque[_Pending] = deque()
        # Appends and what they hold change together (_log_lock), so a fold takes exactly the
        # batches of the segments it seals.
        self._log_lock = threading.Lock()
        self._logged: list[_Pending] = []  # acknowledged, not yet taken by a fold
        self._logged_spans = 0
        self._logged_bytes = 0
        self._oldest_logged_at = 0.0  # monotonic
        self._logged_seq = 0  # the last batch logged
        self._folded_seq = 0  # every batch up to this one is in the store
        self._flush_seq = 0  # readers wait for the batches up to this one
        self._fold_failures = 0
        self._retry_at = 0.0
        self._fold_failing = False
        self._queued_spans = 0  # waiting, logged and folding: all that is held in memory
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._senders = ActiveSenders(limits.active_sender_s)
        self._accepting = False
        self._stopping = False
        self._writer_done = False
        self._thread = threading.Thread(target=self._run, name="fluoro-writer", daemon=True)
        self._folder = threading.Thread(target=self._run_folds, name="fluoro-folder", daemon=True)
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
            self._flush_seq = self._logged_seq
        self._accepting = True
        now = time.monotonic()
        for task in self._periodic:
            task.due_at = now + task.interval_s
        self._thread.start()
        self._folder.start()

    def _replayed(self) -> list[_Pending]:
        held = []
        for record in self._log.replay():
            try:
                batch = self._decode_record(record)
            except Exception:  # it decoded when it came in: only a changed decoder gets here
                _logger.exception("a record of the ingest log could not be decoded; its spans are lost")
                continue
            held.append(_Pending(batch, len(record) + batch.decoded_bytes, _ignore))
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
            if self._queued_spans and (over_spans or over_bytes):
                return False
            self._queue.append(_Pending(batch, byte_size, done, sender, record))
            if sender is not None:
                self._senders.saw(sender, len(record) if record is not None else 0)
            self._queued_spans += spans
            self._queued_bytes += byte_size
            self._cond.notify_all()
        return True

    async def write(self, batch: SpanBatch, record: bytes, sender: Hashable | None = None) -> WriteOutcome | None:
        """Submit and wait until the batch is durable (its record logged); None when the queue refused it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteOutcome] = loop.create_future()

        def done(outcome: WriteOutcome) -> None:
            loop.call_soon_threadsafe(_resolve, future, outcome)

        # Bounded by what it costs in memory: its logged body and its decoded columns.
        if not self.submit(batch, len(record) + batch.decoded_bytes, done, sender, record):
            return None
        return await future

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every batch acknowledged so far is in the store (a fold that fails ends
        the wait too: the reader then sees the store as it is)."""
        with self._cond:
            target = self._logged_seq
            if self._folded_seq >= target or threading.current_thread() is self._folder or not self._folder.is_alive():
                return
            failures = self._fold_failures
            self._flush_seq = max(self._flush_seq, target)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._folded_seq >= target or self._fold_failures > failures, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Refuse new batches, log and fold everything queued, stop the threads; True if drained in time."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in (self._thread, self._folder):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not (self._thread.is_alive() or self._folder.is_alive())

    # ------------------------------------------------------------------ the writer: log, acknowledge

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            self._log_group(group)
        with self._cond:
            self._writer_done = True  # the folder folds what is left, then ends
            self._cond.notify_all()

    def _take_group(self) -> list[_Pending] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._stopping)
            if not self._queue:
                return None
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
        while (
            not self._stopping and (waiting := sum(p.batch.span_count for p in self._queue)) < limits.linger_until_spans
        ):
            senders = [p.sender for p in self._queue]
            if None not in senders and self._senders.all_waiting(senders):
                return  # every sender is waiting on this group: nothing more can come
            bulk = waiting >= limits.bulk_spans
            remaining = started + (limits.bulk_linger_s if bulk else limits.linger_s) - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _log_group(self, group: list[_Pending]) -> None:
        """Append the group to the log and acknowledge it; refuse it while the store is failing."""
        error = self.last_error if self._fold_failing else None  # hold no more until the store takes what it has
        if error is None:
            records = [p.record for p in group if p.record is not None]
            with self._log_lock:
                try:
                    if records:
                        self._log.append(records)
                except StoreUnavailable as exc:
                    error = str(exc)
                else:
                    self._hold(group)
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
            pending.done(WriteOutcome(pending.batch.span_count))

    def _hold(self, group: list[_Pending]) -> None:
        """Keep logged batches (their spans and bytes stay counted) until they are folded."""
        with self._cond:
            if not self._logged:
                self._oldest_logged_at = time.monotonic()
            for pending in group:
                pending.record = None  # logged: only the batch is needed now
                self._logged_seq += 1
                pending.seq = self._logged_seq
            self._logged.extend(group)
            self._logged_spans += sum(p.batch.span_count for p in group)
            self._logged_bytes += sum(p.byte_size for p in group)
            self._cond.notify_all()

    def _release(self, group: list[_Pending]) -> None:
        with self._cond:
            for pending in group:
                self._queued_spans -= pending.batch.span_count
                self._queued_bytes -= pending.byte_size

    # ------------------------------------------------------------------ the folder: store

    def _run_folds(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._folder_has_work, self._seconds_to_wake())
                final = self._writer_done
                if final and not self._logged:
                    return
                due = self._fold_due(time.monotonic()) or final
            if due and not self._fold() and final:
                _logger.error("%d acknowledged spans stay in the ingest log until the next start", self._logged_spans)
                return
            run_due(self._periodic)

    def _fold_due(self, now: float) -> bool:
        if not self._logged or now < self._retry_at:
            return False
        return (
            self._logged_spans >= self._fold_spans
            or self._logged_bytes >= self._limits.max_queue_bytes // 2
            or self._flush_seq > self._folded_seq
            or now >= self._oldest_logged_at + self._limits.fold_interval_s
        )

    def _folder_has_work(self) -> bool:
        now = time.monotonic()
        return self._writer_done or self._fold_due(now) or any(now >= task.due_at for task in self._periodic)

    def _seconds_to_wake(self) -> float:
        due = [task.due_at for task in self._periodic]
        if self._logged:
            due.append(max(self._retry_at, self._oldest_logged_at + self._limits.fold_interval_s))
        return max(0.0, min(due, default=time.monotonic() + 1.0) - time.monotonic())

    def _take_logged(self) -> tuple[list[_Pending], list[int]]:
        """Everything logged so far, and the log's sealed segments that hold it."""
        with self._log_lock:
            segments = self._log.seal()
            with self._cond:
                taken, self._logged, self._logged_spans, self._logged_bytes = self._logged, [], 0, 0
        return taken, segments

    def _fold(self) -> bool:
        """Write every logged batch to the store in one transaction, then drop their log segments."""
        try:
            taken, segments = self._take_logged()
        except StoreUnavailable as exc:  # the log could not be sealed: fold later, nothing is lost
            self._fold_failed(str(exc), [])
            return False
        started = time.perf_counter()
        error = None
        try:
            stored = self._writer.write([p.batch for p in taken])
        except StoreUnavailable as exc:
            error = str(exc)
        except Exception as exc:
            _logger.exception("unexpected error writing spans")
            error = f"internal error: {exc}"
        if error is not None:
            self._fold_failed(error, taken)
            return False
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        self._metrics.stored.inc(stored)
        try:
            self._log.drop(segments)
        except StoreUnavailable as exc:  # their records are stored: a replay adds nothing
            _logger.warning("%s", exc)
        self._release(taken)
        with self._cond:
            self._fold_failing = False
            self._set_health(None)
            self._folded_seq = max(self._folded_seq, max((p.seq for p in taken), default=0))
            self._cond.notify_all()
        return True

    def _fold_failed(self, error: str, taken: list[_Pending]) -> None:
        """Put the batches back in front of newer ones; refuse new batches until a fold succeeds."""
        with self._cond:
            if taken:
                self._logged_spans += sum(p.batch.span_count for p in taken)
                self._logged_bytes += sum(p.byte_size for p in taken)
                self._logged = taken + self._logged
                self._oldest_logged_at = time.monotonic() - self._limits.fold_interval_s  # still due
            self._fold_failing = True
            self._set_health(error)
            self._retry_at = time.monotonic() + FAILURE_PAUSE_S
            self._fold_failures += 1
            self._cond.notify_all()

    def _set_health(self, error: str | None) -> None:
        if error is None and not self.healthy:
            _logger.warning("store recovered; ingest resumed")
        elif error is not None and self.healthy:
            _logger.error("store failing, batches refused until it recovers: %s", error)
        self.healthy, self.last_error = error is None, error


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
