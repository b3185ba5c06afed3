"""What the ingest pipeline's tests share: batches and their log records, a fake store, a log
that can fail, a manual clock, and a pipeline started on them."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from collector.ingest.ingest_log import IngestLog
from collector.ingest.limits import PipelineLimits
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch, SpanBatchBuilder
from collector.storage.protocols import StoreUnavailable
from tests.clocks import ManualClock
from tests.factories import span_row

PROMPT = PipelineLimits(linger_s=0.0, bulk_linger_s=0.0, fold_interval_s=60.0)


def batch_of(spans: int, first_span_id: int = 1) -> SpanBatch:
    builder = SpanBatchBuilder()
    for i in range(spans):
        builder.add_span(span_row(trace_id=bytes(15) + b"\x01", span_id=first_span_id + i))
    return builder.build()


def record_of(spans: int, first_span_id: int = 1) -> bytes:
    """The log's record of batch_of(spans, first_span_id), as a request's body is the receiver's."""
    return f"{spans}:{first_span_id}".encode()


def decode_record(record: bytes) -> SpanBatch:
    spans, first_span_id = record.split(b":")
    return batch_of(int(spans), int(first_span_id))


def submit(  # type: ignore[no-untyped-def]
    pipeline: IngestPipeline, spans: int, outcomes, first_span_id: int = 1, byte_size: int = 1, sender=None
) -> bool:
    record = record_of(spans, first_span_id)
    return pipeline.submit(batch_of(spans, first_span_id), byte_size, outcomes.append, sender, record)


class FakeWriter:
    """Records the spans of each write it is given; can be told to fail, or to block until released."""

    def __init__(self) -> None:
        self.writes: list[int] = []
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()

    def write(self, batches: Sequence[SpanBatch]) -> int:
        self.gate.wait(5)
        if self.failing:
            raise StoreUnavailable("disk full")
        self.writes.append(sum(b.span_count for b in batches))
        return sum(b.span_count for b in batches)


class RecordingLog(IngestLog):
    """The real log, recording how many records each append carried; can be told to fail."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.appends: list[int] = []
        self.failing = False

    def append(self, records: Sequence[bytes]) -> None:
        if self.failing:
            raise StoreUnavailable("appending to the ingest log failed: No space left on device")
        super().append(records)
        self.appends.append(len(records))


def started(  # type: ignore[no-untyped-def]
    writer, log: IngestLog, clock: ManualClock, limits: PipelineLimits = PROMPT, periodic=()
) -> IngestPipeline:
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), limits, periodic, clock)
    pipeline.start()
    return pipeline
