"""The X-Ray daemon protocol: segment documents over UDP (port 2000).

The event loop only takes each datagram into a bounded inbox (a deque under a lock, bounded in
bytes): parsing JSON costs ~5 ms for a 56 KB datagram, which on the loop would hold up every
OTLP acknowledgement and page behind it. A thread of its own (``fluoro-xray``) parses them and
gathers the spans into one batch, submitted to the pipeline at most every `flush_interval_s`
or every `max_batch_spans` spans. A datagram is taken whole or not at all: a bad subsegment or
an unbelievable time anywhere in it refuses every span it holds.

UDP has no acknowledgement, so nothing waits for the commit: when the inbox is full the
datagram is dropped and counted (a flood costs the loop one append each), and when the pipeline
refuses a batch (full, stopping) it is dropped and counted. Memory is bounded by the inbox, the
batch and the pipeline's queue; past that the kernel's socket buffer drops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from collector.client_errors import RateLimitedLog
from collector.metrics import CollectorMetrics
from collector.model import SpanBatchBuilder
from collector.normalize.admission import TimeBounds, refusals
from collector.normalize.xray import BadSegment, SegmentWalker, parse_datagram
from collector.pipeline import IngestPipeline, WriteOutcome

_logger = logging.getLogger(__name__)
RECEIVER = "xray_udp"


@dataclass(frozen=True)
class XRayReceiverSettings:
    flush_interval_s: float = 0.1
    max_batch_spans: int = 2000
    max_inbox_bytes: int = 16 * 1024 * 1024
    time_bounds: TimeBounds = field(default_factory=TimeBounds)


class DatagramInbox:
    """Datagrams waiting for the parser thread, bounded in bytes; put never blocks."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, data: bytes) -> bool:
        """False (nothing kept) when full or closed."""
        with self._cond:
            if self._closed or self._bytes + len(data) > self._max_bytes:
                return False
            self._items.append(data)
            self._bytes += len(data)
            self._cond.notify()
        return True

    def take(self, timeout_s: float | None) -> bytes | None:
        """The oldest datagram, or None after `timeout_s` (None: however long it takes; at once
        when closed and empty)."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            if not self._items:
                return None
            data = self._items.popleft()
            self._bytes -= len(data)
            return data

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._items


class XRayUdpReceiver(asyncio.DatagramProtocol):
    """asyncio protocol for the X-Ray daemon's UDP socket, with its parser thread."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        metrics: CollectorMetrics,
        settings: XRayReceiverSettings,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.settings = settings
        self._clock_ns = clock_ns
        self._inbox = DatagramInbox(settings.max_inbox_bytes)
        self._builder = SpanBatchBuilder()
        self._bytes = 0
        self._client_errors = RateLimitedLog(_logger)
        self.transport: asyncio.DatagramTransport | None = None
        self._parser = threading.Thread(target=self._parse_until_closed, name="fluoro-xray", daemon=True)
        self._parser.start()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self._inbox.put(data):
            self.metrics.xray_dropped_datagrams.inc()

    def _parse_until_closed(self) -> None:
        deadline: float | None = None
        while not self._inbox.drained:
            # Idle, it sleeps until a datagram comes: a thread waking on a timer takes the GIL
            # from the event loop (10 wakes a second had cost OTLP acknowledgements ~2 ms at p99).
            wait_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            data = self._inbox.take(wait_s)
            if data is not None:
                self._add_datagram(data)
                if self._builder.span_count >= self.settings.max_batch_spans:
                    self._flush()
                    deadline = None
                elif deadline is None and self._builder.span_count:
                    deadline = time.monotonic() + self.settings.flush_interval_s
            if deadline is not None and time.monotonic() >= deadline:
                self._flush()
                deadline = None
        self._flush()

    def _add_datagram(self, data: bytes) -> None:
        """Parse one datagram into a builder of its own, then take all its spans or none."""
        one = SpanBatchBuilder()
        try:
            SegmentWalker(one).add_document(parse_datagram(data))
        except BadSegment as exc:
            self._refuse_datagram(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a parser bug: this datagram only, one line, no traceback
            self._refuse_datagram(f"broke the parser: {type(exc).__name__}: {exc}")
            return
        if not one.rows:
            return
        times = refusals(
            np.fromiter((r.start_ns for r in one.rows), np.int64, len(one.rows)),
            np.fromiter((r.duration_ns for r in one.rows), np.int64, len(one.rows)),
            self.settings.time_bounds,
            self._clock_ns(),
        )
        self.metrics.received.labels(RECEIVER).inc(len(one.rows))
        if times.counts:
            for reason, count in times.counts.items():
                self.metrics.rejected_for_time.labels(RECEIVER, reason).inc(count)
            self.metrics.rejected.labels(RECEIVER).inc(len(one.rows))
            self._client_errors.warn("X-Ray datagram refused", ", ".join(times.counts))
            return
        self._builder.extend(one)
        self._bytes += len(data)

    def _refuse_datagram(self, reason: str) -> None:
        self.metrics.bad_datagrams.inc()
        self._client_errors.warn("X-Ray datagram refused", reason)

    def _flush(self) -> None:
        """Hand the gathered spans to the pipeline (dropping them, counted, if it refuses)."""
        if self._builder.span_count == 0:
            return
        builder, byte_size = self._builder, self._bytes
        self._builder, self._bytes = SpanBatchBuilder(), 0
        try:
            batch = builder.build()
        except Exception as exc:  # noqa: BLE001 - a value no column takes: these spans only
            self._client_errors.warn("X-Ray spans could not be batched", f"{type(exc).__name__}: {exc}")
            self.metrics.rejected.labels(RECEIVER).inc(builder.span_count)
            return
        if not self.pipeline.submit(batch, byte_size + batch.decoded_bytes, self._on_written(batch.span_count)):
            self.metrics.dropped.labels(RECEIVER).inc(batch.span_count)

    def _on_written(self, spans: int) -> Callable[[WriteOutcome], None]:
        def done(outcome: WriteOutcome) -> None:
            if not outcome.ok:
                self.metrics.dropped.labels(RECEIVER).inc(spans)

        return done

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking datagrams, parse and submit what is in the inbox, stop the thread (the
        transport belongs to the event loop that made it, which closes it)."""
        self._inbox.close()
        self._parser.join(timeout_s)
