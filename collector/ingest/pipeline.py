"""The ingest pipeline: receivers submit batches, an acknowledging writer logs them, a folder stores them.

Three parts, each on its own (read them one at a time):

- :class:`~collector.ingest.ack_writer.AckWriter` queues submitted batches, logs them in groups
  (the ingest log, fsync'd) and answers each once durable;
- :class:`~collector.ingest.ledger.Ledger` holds what is logged but not stored, with the order it
  was logged in, for the folder and for readers' flushes;
- :class:`~collector.ingest.folder.Folder` moves what is logged into the store and retries a
  failing store.

Everything held in memory (waiting, logged, folding) is bounded in spans and in bytes
(held_budget.py): when full, or stopping, ``submit`` refuses at once and the receiver answers
503 with Retry-After rather than buffering without bound. A batch without a record (X-Ray's UDP:
nobody waits for an answer) is held in memory only. At start, what the log still holds from the
last run is entered as logged and folded first. Every part reads time from one injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable

from collector.ingest.ack_writer import AckWriter
from collector.ingest.clock import Clock, SystemClock
from collector.ingest.folder import Folder
from collector.ingest.health import Health
from collector.ingest.held_budget import HeldBudget
from collector.ingest.ingest_log import IngestLog
from collector.ingest.ledger import Ledger
from collector.ingest.limits import PipelineLimits
from collector.ingest.pending import Pending, WriteOutcome
from collector.ingest.periodic import PeriodicTask
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.process_heap import release_free_heap
from collector.storage.protocols import SpanWriter

_logger = logging.getLogger(__name__)
DEFAULT_LIMITS = PipelineLimits()


class IngestPipeline:
    """The writer, the ledger and the folder, composed; what receivers and readers call."""

    def __init__(
        self,
        store: SpanWriter,
        log: IngestLog,
        decode_record: Callable[[bytes], SpanBatch],
        metrics: CollectorMetrics,
        limits: PipelineLimits = DEFAULT_LIMITS,
        periodic: tuple[PeriodicTask, ...] = (),
        clock: Clock | None = None,
        after_fold: Callable[[], None] = release_free_heap,
    ) -> None:
        clock = clock or SystemClock()
        self._decode_record = decode_record
        self._budget = HeldBudget(limits.max_queue_spans, limits.max_queue_bytes)
        self._health = Health()
        self._ledger = Ledger(log, clock)
        self._writer = AckWriter(self._ledger, self._budget, self._health, limits, clock)
        self._folder = Folder(
            self._ledger, store, self._budget, self._health, metrics, limits, periodic, clock, after_fold
        )
        metrics.watch_queue(lambda: self._budget.spans, lambda: self._budget.byte_count)

    @property
    def queued_spans(self) -> int:
        return self._budget.spans

    @property
    def healthy(self) -> bool:
        return self._health.healthy

    @property
    def last_error(self) -> str | None:
        return self._health.last_error

    def start(self) -> None:
        """Take back what the log holds from the last run (it is folded first), then accept."""
        replayed = self._replayed()
        if replayed:
            spans = sum(p.spans for p in replayed)
            _logger.info("ingest log: %d spans acknowledged in the last run go to the store", spans)
            self._budget.take(spans, sum(p.byte_size for p in replayed))
            self._ledger.enter(replayed, flush=True)
        self._writer.start()
        self._folder.start()

    def _replayed(self) -> list[Pending]:
        held = []
        for record in self._ledger.replay():
            try:
                batch = self._decode_record(record)
            except Exception:  # it decoded when it came in: only a changed decoder gets here
                _logger.exception("a record of the ingest log could not be decoded; its spans are lost")
                continue
            held.append(Pending(batch, len(record) + batch.decoded_bytes, _ignore))
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
        return self._writer.submit(Pending(batch, byte_size, done, sender, record))

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
        self._folder.flush(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Refuse new batches, log and fold everything queued, stop the threads; True if drained in time."""
        self._writer.stop()
        deadline = time.monotonic() + timeout_s
        writer_done = self._writer.join(timeout_s)
        return self._folder.join(max(0.0, deadline - time.monotonic())) and writer_done


def _ignore(outcome: WriteOutcome) -> None:
    """A replayed batch's request was answered in the last run."""


def _resolve(future: asyncio.Future[WriteOutcome], outcome: WriteOutcome) -> None:
    if not future.done():
        future.set_result(outcome)
