"""Ended spans, batched for export on one background thread (or sent one by one, for tests).

Why not the SDK's BatchSpanProcessor: importing it (``opentelemetry.sdk.trace.export`` with
its shared batching core and self-metrics) cost every cold start ~1.4 ms, a sixth of what the
tracer adds to the SDK's own import, and its per-span path asks the kernel for the process id
to notice a fork. ``bench/tracer_overhead.py`` prints both (the import part and the sampled
call). What it does is specified (OpenTelemetry's SDK spec, "Batching processor"), so it is
done here: a bounded queue (OTEL_BSP_MAX_QUEUE_SIZE; when full, the oldest span gives way, is
counted, and a warning says so at most once a minute), batches of at most
OTEL_BSP_MAX_EXPORT_BATCH_SIZE sent as soon as that many wait and otherwise every
OTEL_BSP_SCHEDULE_DELAY, ``force_flush`` sending what waits on the caller's thread,
``shutdown`` sending the rest, a forked child starting empty with its own thread, and sampled
spans only, as the SDK's processors do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

_logger = logging.getLogger(__name__)

SHUTDOWN_WAIT_S = 30.0
FULL_QUEUE_WARNING_EVERY_S = 60.0


class SpanSink(Protocol):
    """Where batches go: True when a batch was delivered."""

    def deliver(self, spans: Sequence[ReadableSpan]) -> bool: ...

    def shutdown(self) -> None: ...


def _sampled(span: ReadableSpan) -> bool:
    context = span.context
    return context is not None and context.trace_flags.sampled


class SpanBatcher(SpanProcessor):
    """Queues sampled spans as they end; a daemon thread delivers them to `sink` in batches."""

    def __init__(self, sink: SpanSink, *, delay_ms: int = 1000, max_queue: int = 2048, max_batch: int = 512) -> None:
        self._sink = sink
        self._delay_s = delay_ms / 1000
        self._max_batch = max(1, min(max_batch, max_queue))
        self._queue: deque[ReadableSpan] = deque(maxlen=max(1, max_queue))
        self._stopping = False
        self._next_warning_at = 0.0
        self.dropped_spans = 0
        self._start_worker()
        start_afresh = weakref.WeakMethod(self._start_afresh)
        os.register_at_fork(after_in_child=lambda: _call_if_alive(start_afresh))

    def _start_worker(self) -> None:
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._worker = threading.Thread(target=self._work, name="FluoroSpanBatcher", daemon=True)
        self._worker.start()

    def _start_afresh(self) -> None:
        """In a forked child: the parent's queue is the parent's to send; its thread did not fork."""
        self._queue.clear()
        if not self._stopping:
            self._start_worker()

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping or not _sampled(span):
            return
        queue = self._queue
        if len(queue) == queue.maxlen:
            self._count_dropped()
        queue.append(span)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def _count_dropped(self) -> None:
        self.dropped_spans += 1
        now = time.monotonic()
        if now >= self._next_warning_at:  # a queue that stays full would otherwise log a line a batch
            self._next_warning_at = now + FULL_QUEUE_WARNING_EVERY_S
            _logger.warning(
                "fluoro: the export queue is full (%d spans); the oldest give way (%d dropped so far)",
                self._queue.maxlen,
                self.dropped_spans,
            )

    def _work(self) -> None:
        while True:
            woken = self._wake.wait(self._delay_s)
            self._wake.clear()  # before sending: a batch filled meanwhile wakes the next round
            stopping = self._stopping
            self._send(full_batches_only=woken and not stopping)
            if stopping:
                return

    def _send(self, *, full_batches_only: bool = False, deadline: float | None = None) -> bool:
        """Deliver what waits (only whole batches if asked); False if any delivery failed or the
        deadline passed first."""
        wait_s = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._send_lock.acquire(timeout=wait_s):
            return False
        try:
            delivered = True
            queue = self._queue
            while queue and (len(queue) >= self._max_batch or not full_batches_only):
                if deadline is not None and time.monotonic() > deadline:
                    return False
                # Only this thread takes from the left; on_end appending never shortens the queue.
                batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
                delivered = self._deliver(batch) and delivered
            return delivered
        finally:
            self._send_lock.release()

    def _deliver(self, batch: list[ReadableSpan]) -> bool:
        try:
            delivered = self._sink.deliver(batch)
        except Exception:
            _logger.exception("fluoro: exporting %d spans failed", len(batch))
            return False
        return delivered

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send everything waiting now, on this thread; True if it was all delivered in time."""
        if self._stopping:
            return False
        return self._send(deadline=time.monotonic() + timeout_millis / 1000)

    def shutdown(self) -> None:
        """Send what waits (the worker's last round) and close the sink; later spans are ignored."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._worker.join(SHUTDOWN_WAIT_S)
        self._sink.shutdown()


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


class ExportEachSpan(SpanProcessor):
    """Delivers every sampled span as it ends, on the thread that ended it (tests' capture)."""

    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink
        self._stopped = False

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopped or not _sampled(span):
            return
        try:
            self._sink.deliver((span,))
        except Exception:
            _logger.exception("fluoro: exporting a span failed")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return not self._stopped

    def shutdown(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._sink.shutdown()
