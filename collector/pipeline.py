"""The ingest pipeline: a bounded queue in front of one writer thread that group-commits.

Receivers submit normalized batches; the writer thread takes everything waiting (up to
``max_group_spans``), writes it in one transaction, commits, and only then reports each batch
done, so an OTLP request is answered 200 only once its spans are durable. The queue is bounded
in spans and in bytes: when it is full, or the pipeline is stopping, ``submit`` refuses at once
and the receiver answers 503 with Retry-After, rather than buffering without bound. A failing
store fails the batches it was given (their requests get 503 and are retried by the client)
and marks the pipeline unhealthy until a write succeeds again. Periodic housekeeping
(retention) runs on the same thread, so it never races a write. A commit has a large fixed
cost, so a small group lingers up to ``linger_s`` for company before it is written.
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
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.storage.protocols import SpanWriter, StoreUnavailable

_logger = logging.getLogger(__name__)
FAILURE_PAUSE_S = 0.2


@dataclass(frozen=True)
class WriteOutcome:
    """How one submitted batch ended: stored (count of new spans) or failed (reason)."""

    stored: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PipelineLimits:
    max_queue_spans: int = 200_000
    max_queue_bytes: int = 256 * 1024 * 1024
    max_group_spans: int = 50_000
    # How long the writer waits for more batches before committing a small group: a commit
    # has a large fixed cost, so at moderate load a little waiting buys a lot of CPU back.
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


@dataclass
class PeriodicTask:
    """Work the writer thread runs every `interval_s` seconds."""

    interval_s: float
    run: Callable[[], None]
    due_at: float = 0.0


class IngestPipeline:
    """Bounded queue + single writer with group commit."""

    def __init__(
        self,
        writer: SpanWriter,
        metrics: CollectorMetrics,
        limits: PipelineLimits = PipelineLimits(),
        periodic: tuple[PeriodicTask, ...] = (),
    ) -> None:
        self._writer = writer
        self._metrics = metrics
        self._limits = limits
        self._periodic = list(periodic)
        self._queue: deque[_Pending] = deque()
        self._queued_spans = 0
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
        self._accepting = True
        now = time.monotonic()
        for task in self._periodic:
            task.due_at = now + task.interval_s
        self._thread.start()

    def submit(
        self, batch: SpanBatch, byte_size: int, done: Callable[[WriteOutcome], None], sender: Hashable | None = None
    ) -> bool:
        """Queue a batch; False (and `done` is never called) when full or stopping. `sender`: the
        client connection it came from, if known (see active_senders.py)."""
        spans = batch.span_count
        with self._cond:
            if not self._accepting:
                return False
            over_spans = self._queued_spans + spans > self._limits.max_queue_spans
            over_bytes = self._queued_bytes + byte_size > self._limits.max_queue_bytes
            if self._queue and (over_spans or over_bytes):
                return False
            self._queue.append(_Pending(batch, byte_size, done, sender))
            if sender is not None:
                self._senders.saw(sender)
            self._queued_spans += spans
            self._queued_bytes += byte_size
            self._cond.notify()
        return True

    async def write(self, batch: SpanBatch, byte_size: int, sender: Hashable | None = None) -> WriteOutcome | None:
        """Submit and wait for the commit; None when the queue refused the batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteOutcome] = loop.create_future()

        def done(outcome: WriteOutcome) -> None:
            loop.call_soon_threadsafe(_resolve, future, outcome)

        if not self.submit(batch, byte_size, done, sender):
            return None
        return await future

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Refuse new batches, write everything queued, stop the thread; True if drained in time."""
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
                self._cond.wait(timeout=self._seconds_to_next_task())
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
        while not self._stopping and self._queued_spans < limits.linger_until_spans:
            senders = [p.sender for p in self._queue]
            if None not in senders and self._senders.all_waiting(senders):
                return  # every sender is waiting on this group: nothing more can come
            bulk = self._queued_spans >= limits.bulk_spans
            remaining = started + (limits.bulk_linger_s if bulk else limits.linger_s) - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _seconds_to_next_task(self) -> float | None:
        if not self._periodic:
            return None
        return max(0.0, min(task.due_at for task in self._periodic) - time.monotonic())

    def _run(self) -> None:
        while True:
            group = self._take_group()
            if group is None:
                return
            if group:
                self._write_group(group)
            self._run_due_tasks()

    def _write_group(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            stored = self._writer.write([p.batch for p in group])
        except StoreUnavailable as exc:
            outcome = WriteOutcome(0, str(exc))
        except Exception as exc:
            _logger.exception("unexpected error writing spans")
            outcome = WriteOutcome(0, f"internal error: {exc}")
        else:
            outcome = WriteOutcome(stored)
            self._metrics.commit_seconds.observe(time.perf_counter() - started)
            self._metrics.stored.inc(stored)
        if outcome.ok:
            if not self.healthy:
                _logger.warning("store recovered; ingest resumed")
            self.healthy, self.last_error = True, None
        else:
            if self.healthy:
                _logger.error("store failing, batches refused until it recovers: %s", outcome.error)
            self.healthy, self.last_error = False, outcome.error
        with self._cond:
            for pending in group:
                self._queued_spans -= pending.batch.span_count
                self._queued_bytes -= pending.byte_size
        for pending in group:
            pending.done(outcome)
        if not outcome.ok:
            time.sleep(FAILURE_PAUSE_S)

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


def _resolve(future: asyncio.Future[WriteOutcome], outcome: WriteOutcome) -> None:
    if not future.done():
        future.set_result(outcome)
