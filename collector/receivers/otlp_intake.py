"""What OTLP/HTTP and OTLP/gRPC share once a request's body is read: decode, admit, log, store.

Traces and logs alike (a :class:`Signal` each): a log record goes the way a span goes.

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
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from collector.capped_body import BODY_WAIT_S, InflightBytes
from collector.client_errors import RateLimitedLog
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics, ReceiverCounts
from collector.model import SpanBatch
from collector.normalize.admission import TimeBounds, admit
from collector.normalize.otlp_json import decode_json
from collector.normalize.otlp_logs import decode_logs_json, decode_logs_protobuf
from collector.normalize.otlp_proto import UndecodableBody, decode_protobuf

_logger = logging.getLogger(__name__)
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)


@dataclass(frozen=True)
class Signal:
    """What a request carries (spans or log records): its decoder for each media type, and the
    tag its record in the ingest log starts with, so a replay decodes it the same way."""

    name: str
    decoders: Mapping[str, Callable[[bytes], SpanBatch]]
    log_tags: Mapping[str, bytes]


TRACES = Signal("traces", {PROTOBUF: decode_protobuf, JSON: decode_json}, {PROTOBUF: b"P", JSON: b"J"})
LOGS = Signal("logs", {PROTOBUF: decode_logs_protobuf, JSON: decode_logs_json}, {PROTOBUF: b"L", JSON: b"K"})
_DECODER_OF_TAG = {tag: signal.decoders[media] for signal in (TRACES, LOGS) for media, tag in signal.log_tags.items()}


class Undecodable(ValueError):
    """The body is not an ExportTraceServiceRequest (the reason says where it broke)."""


class QueueFull(RuntimeError):
    """The ingest queue is at its bound: nothing of the request was kept; retry shortly."""


class StoreFailing(RuntimeError):
    """The ingest log or the store failed: nothing of the request was kept; retry later."""


@dataclass(frozen=True)
class OtlpReceiverSettings:
    """What both transports hold a request to: the body cap (before and after decompression),
    the time a body may take to arrive, the bearer token, and the retry delays they answer a
    full queue and a failing store with."""

    max_body_bytes: int = 20 * 1024 * 1024
    body_wait_s: float = BODY_WAIT_S
    token: str | None = None
    retry_after_full_s: int = 1
    retry_after_failing_s: int = 5


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

    async def take(self, signal: Signal, media: str, body: bytes, receiver: str, sender: Hashable | None) -> Taken:
        """Store the spans or records of `body` (decompressed, of type `media`); answered once durable."""
        try:
            # Off the event loop: the C decoder walks the body without the GIL, so two requests
            # decode on two cores while the loop goes on reading others.
            batch = await asyncio.to_thread(self._decode_and_admit, signal, media, body, receiver)
        except UndecodableBody as exc:
            self.client_errors.warn("undecodable OTLP request", str(exc))
            raise Undecodable(str(exc)) from exc
        except Exception as exc:  # a decoder bug: still this request's refusal, one line
            self.client_errors.warn("OTLP request broke the decoder", f"{type(exc).__name__}: {exc}")
            raise Undecodable(f"could not process the request: {type(exc).__name__}: {exc}") from exc
        counts = self.metrics.counts_of(receiver, signal.name)
        return await self._store(batch, logged_request(signal, media, body), counts, sender)

    def _decode_and_admit(self, signal: Signal, media: str, body: bytes, receiver: str) -> SpanBatch:
        admitted = admit(signal.decoders[media](body), self.time_bounds, time.time_ns())
        for reason, count in admitted.rejected_by_reason.items():
            self.metrics.rejected_for_time.labels(receiver, reason).inc(count)
        _ = admitted.batch.decoded_bytes  # sized here, off the event loop (the queue's bound reads it)
        return admitted.batch

    async def _store(self, batch: SpanBatch, record: bytes, counts: ReceiverCounts, sender: Hashable | None) -> Taken:
        counts.received.inc(batch.row_count + batch.rejected)
        if batch.rejected:
            counts.rejected.inc(batch.rejected)
        if batch.row_count == 0:
            return Taken(batch.rejected, batch.rejection_reason)
        outcome = await self.pipeline.write(batch, record, sender)
        if outcome is None:
            counts.dropped.inc(batch.row_count)
            raise QueueFull("ingest queue is full, retry later")
        if not outcome.ok:
            counts.dropped.inc(batch.row_count)
            raise StoreFailing(f"store unavailable, retry later: {outcome.error}")
        return Taken(batch.rejected, batch.rejection_reason)


def logged_request(signal: Signal, media: str, body: bytes) -> bytes:
    """The ingest log's record of a request: its signal and media type's tag, then the decompressed body."""
    return signal.log_tags[media] + body


def decode_logged_request(record: bytes) -> SpanBatch:
    """The spans or log records of a logged request, as they were decoded when it came in."""
    return _DECODER_OF_TAG[record[:1]](record[1:])
