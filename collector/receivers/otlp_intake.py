"""What OTLP/HTTP and OTLP/gRPC share once a request's body is read: decode, admit, log, store.

Each transport reads and caps its body its own way, then hands the decompressed bytes here; this
decodes them off the event loop, drops spans with unbelievable times (partial success), writes
the request to the ingest log and waits for the commit. It answers with a :class:`Taken`, or
raises one of the refusals below, which each transport turns into its own status (400/503 over
HTTP; INVALID_ARGUMENT, RESOURCE_EXHAUSTED or UNAVAILABLE over gRPC). One place, so the two
transports cannot drift in what they accept or how durably.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from collector.capped_body import InflightBytes
from collector.client_errors import RateLimitedLog
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.normalize.admission import TimeBounds, admit
from collector.normalize.otlp_json import decode_json
from collector.normalize.otlp_proto import UndecodableBody, decode_protobuf

_logger = logging.getLogger(__name__)
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DECODERS: dict[str, Callable[[bytes], SpanBatch]] = {PROTOBUF: decode_protobuf, JSON: decode_json}
LOG_TAGS = {PROTOBUF: b"P", JSON: b"J"}
_MEDIA_OF_TAG = {tag: media for media, tag in LOG_TAGS.items()}


class Undecodable(ValueError):
    """The body is not an ExportTraceServiceRequest (the reason says where it broke)."""


class QueueFull(RuntimeError):
    """The ingest queue is at its bound: nothing of the request was kept; retry shortly."""


class StoreFailing(RuntimeError):
    """The ingest log or the store failed: nothing of the request was kept; retry later."""


@dataclass(frozen=True)
class Taken:
    """The request's spans are durable; `rejected` of them were refused for `reason`."""

    rejected: int
    reason: str


class OtlpIntake:
    """Decodes, admits and durably stores OTLP trace requests for every transport."""

    def __init__(
        self, pipeline: IngestPipeline, metrics: CollectorMetrics, time_bounds: TimeBounds, max_body_bytes: int
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.time_bounds = time_bounds
        self.client_errors = RateLimitedLog(_logger)
        # Bodies in flight over every transport, read or inflated: room for four of the largest
        # at once, or 64 MiB.
        self.inflight = InflightBytes(max(64 * 1024 * 1024, 4 * max_body_bytes))

    async def take(self, media: str, body: bytes, receiver: str, sender: Hashable | None) -> Taken:
        """Store the spans of `body` (decompressed, of type `media`); answered once durable."""
        try:
            # Off the event loop: the C decoder walks the body without the GIL, so two requests
            # decode on two cores while the loop goes on reading others.
            batch = await asyncio.to_thread(self._decode_and_admit, media, body, receiver)
        except UndecodableBody as exc:
            self.client_errors.warn("undecodable OTLP request", str(exc))
            raise Undecodable(str(exc)) from exc
        except Exception as exc:  # a decoder bug: still this request's refusal, one line
            self.client_errors.warn("OTLP request broke the decoder", f"{type(exc).__name__}: {exc}")
            raise Undecodable(f"could not process the request: {type(exc).__name__}: {exc}") from exc
        return await self._store(batch, logged_request(media, body), receiver, sender)

    def _decode_and_admit(self, media: str, body: bytes, receiver: str) -> SpanBatch:
        admitted = admit(DECODERS[media](body), self.time_bounds, time.time_ns())
        for reason, count in admitted.rejected_by_reason.items():
            self.metrics.rejected_for_time.labels(receiver, reason).inc(count)
        _ = admitted.batch.decoded_bytes  # sized here, off the event loop (the queue's bound reads it)
        return admitted.batch

    async def _store(self, batch: SpanBatch, record: bytes, receiver: str, sender: Hashable | None) -> Taken:
        metrics = self.metrics
        metrics.received.labels(receiver).inc(batch.span_count + batch.rejected)
        if batch.rejected:
            metrics.rejected.labels(receiver).inc(batch.rejected)
        if batch.span_count == 0:
            return Taken(batch.rejected, batch.rejection_reason)
        outcome = await self.pipeline.write(batch, record, sender)
        if outcome is None:
            metrics.dropped.labels(receiver).inc(batch.span_count)
            raise QueueFull("ingest queue is full, retry later")
        if not outcome.ok:
            metrics.dropped.labels(receiver).inc(batch.span_count)
            raise StoreFailing(f"store unavailable, retry later: {outcome.error}")
        return Taken(batch.rejected, batch.rejection_reason)


def logged_request(media: str, body: bytes) -> bytes:
    """The ingest log's record of a request: its media type's tag, then the decompressed body."""
    return LOG_TAGS[media] + body


def decode_logged_request(record: bytes) -> SpanBatch:
    """The spans of a logged request, as they were decoded when it came in."""
    return DECODERS[_MEDIA_OF_TAG[record[:1]]](record[1:])
