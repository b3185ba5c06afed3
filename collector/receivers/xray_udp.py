"""The X-Ray daemon protocol: segment documents over UDP (port 2000).

Datagrams are parsed as they arrive and gathered into one batch, submitted to the pipeline at
most every `flush_interval_s` or every `max_batch_spans` spans. UDP has no acknowledgement, so
nothing waits for the commit: when the pipeline refuses (full, stopping), the batch is dropped
and counted. Memory is bounded by the batch size and the pipeline's queue; a flood beyond
that is dropped by the kernel's socket buffer or here, never blocking the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from collector.metrics import CollectorMetrics
from collector.model import SpanBatchBuilder
from collector.normalize.xray import BadSegment, SegmentWalker, parse_datagram
from collector.pipeline import IngestPipeline, WriteOutcome

_logger = logging.getLogger(__name__)
RECEIVER = "xray_udp"


@dataclass(frozen=True)
class XRayReceiverSettings:
    flush_interval_s: float = 0.1
    max_batch_spans: int = 2000


class XRayUdpReceiver(asyncio.DatagramProtocol):
    """asyncio protocol for the X-Ray daemon's UDP socket."""

    def __init__(self, pipeline: IngestPipeline, metrics: CollectorMetrics, settings: XRayReceiverSettings) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.settings = settings
        self._builder = SpanBatchBuilder()
        self._bytes = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            document = parse_datagram(data)
            added = SegmentWalker(self._builder).add_document(document)
        except BadSegment as exc:
            self.metrics.bad_datagrams.inc()
            _logger.debug("dropped X-Ray datagram: %s", exc)
            return
        except Exception:
            self.metrics.bad_datagrams.inc()
            _logger.exception("dropped an X-Ray datagram that broke the parser")
            return
        self.metrics.received.labels(RECEIVER).inc(added)
        self._bytes += len(data)
        if self._builder.span_count >= self.settings.max_batch_spans:
            self.flush()
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.settings.flush_interval_s, self.flush)

    def flush(self) -> None:
        """Hand the gathered spans to the pipeline (dropping them, counted, if it refuses)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._builder.span_count == 0:
            return
        try:
            batch = self._builder.build()
        except Exception:
            _logger.exception("dropped %d X-Ray spans that could not be batched", self._builder.span_count)
            self.metrics.rejected.labels(RECEIVER).inc(self._builder.span_count)
            self._builder, self._bytes = SpanBatchBuilder(), 0
            return
        byte_size = self._bytes
        self._builder, self._bytes = SpanBatchBuilder(), 0
        if not self.pipeline.submit(batch, byte_size, self._on_written(batch.span_count)):
            self.metrics.dropped.labels(RECEIVER).inc(batch.span_count)

    def _on_written(self, spans: int) -> Callable[[WriteOutcome], None]:
        def done(outcome: WriteOutcome) -> None:
            if not outcome.ok:
                self.metrics.dropped.labels(RECEIVER).inc(spans)

        return done

    def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()
