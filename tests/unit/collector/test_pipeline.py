"""The ingest pipeline with a fake writer and a real ingest log: acknowledged once logged,
folded into the store in one write, bounded, failing and recovering, replayed at start."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from collector.ingest_log import IngestLog
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch, SpanBatchBuilder
from collector.pipeline import IngestPipeline, PeriodicTask, PipelineLimits, WriteOutcome
from collector.storage.protocols import StoreUnavailable
from tests.factories import span_row
from tests.waiting import wait_until

NO_TIMED_FOLD = PipelineLimits(fold_interval_s=60.0)


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


@pytest.fixture
def log(tmp_path: Path) -> RecordingLog:
    return RecordingLog(str(tmp_path / "spans.ingest"))


def collect(outcomes: list[WriteOutcome]):  # type: ignore[no-untyped-def]
    return outcomes.append


def test_a_batch_is_acknowledged_once_logged_and_folded_into_the_store_later(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), PipelineLimits(fold_interval_s=0.3))
    pipeline.start()
    outcome = asyncio.run(pipeline.write(batch_of(3), record_of(3)))
    assert outcome is not None and outcome.ok and outcome.spans == 3
    assert writer.writes == [] and log.size_bytes > 0  # durable, not yet in the store
    wait_until(lambda: writer.writes == [3] and log.size_bytes == 0)
    assert log.replay() == []  # emptied once folded
    assert pipeline.stop()


def test_waiting_batches_share_one_append_and_many_appends_one_fold(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    writer.gate.clear()
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert submit(pipeline, 1, outcomes, byte_size=10)
    wait_until(lambda: len(outcomes) == 1)
    for _ in range(5):
        assert submit(pipeline, 2, outcomes, byte_size=10)
    wait_until(lambda: len(outcomes) == 6)
    assert all(o.ok for o in outcomes)
    assert log.appends[0] == 1 and sum(log.appends) == 6
    writer.gate.set()
    pipeline.flush()
    assert writer.writes == [11]
    assert pipeline.stop()


def test_a_batch_without_a_record_is_held_in_memory_only_and_folded_like_the_rest(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert pipeline.submit(batch_of(2), 1, outcomes.append)  # as X-Ray's UDP receiver submits: no answer waits
    assert submit(pipeline, 3, outcomes, first_span_id=10)
    wait_until(lambda: len(outcomes) == 2)
    assert all(o.ok for o in outcomes)
    assert log.replay() == [record_of(3, 10)]
    pipeline.flush()
    assert writer.writes == [5]
    assert pipeline.stop()


def test_flush_brings_every_acknowledged_batch_into_the_store(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    pipeline.flush()  # nothing logged: returns at once
    assert writer.writes == []
    for n in range(3):
        assert asyncio.run(pipeline.write(batch_of(2, first_span_id=10 * n + 1), record_of(2, 10 * n + 1))) is not None
    assert writer.writes == []
    pipeline.flush()
    assert writer.writes == [6] and pipeline.queued_spans == 0
    assert pipeline.stop()


def test_batches_are_acknowledged_while_a_fold_is_in_the_store(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    assert asyncio.run(pipeline.write(batch_of(2), record_of(2))) is not None
    writer.gate.clear()  # the store takes its time over the next fold
    reader = threading.Thread(target=pipeline.flush)
    reader.start()
    wait_until(lambda: os.path.exists(f"{log.path}.1"))  # the fold sealed the log's segment
    outcome = asyncio.run(pipeline.write(batch_of(3, first_span_id=10), record_of(3, 10)))
    assert outcome is not None and outcome.ok and writer.writes == []  # answered, the fold still going
    writer.gate.set()
    reader.join(5)
    assert writer.writes == [2]
    assert log.replay() == [record_of(3, 10)]  # the stored segment is gone, the new one stays
    pipeline.flush()
    assert writer.writes == [2, 3] and log.replay() == []
    assert pipeline.stop()


def test_enough_logged_spans_are_folded_without_waiting_for_the_interval(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(
        writer, log, decode_record, CollectorMetrics(), PipelineLimits(fold_interval_s=60.0, fold_spans=5)
    )
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    for _ in range(3):
        submit(pipeline, 2, outcomes)
    wait_until(lambda: sum(writer.writes) == 6)
    assert pipeline.stop()


@pytest.mark.parametrize("bound", ["spans", "bytes"])
def test_a_fold_starts_once_half_the_bounds_are_logged(bound: str, log: RecordingLog) -> None:
    # Folding only at fold_spans would wait for the interval once the bounds refuse the rest.
    writer = FakeWriter()
    limits = (
        PipelineLimits(max_queue_spans=10, fold_interval_s=60.0)
        if bound == "spans"
        else PipelineLimits(max_queue_bytes=1000, fold_interval_s=60.0)
    )
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), limits)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert submit(pipeline, 2, outcomes, byte_size=300)
    wait_until(lambda: len(outcomes) == 1)
    time.sleep(0.1)
    assert writer.writes == []  # under half of both bounds: waits for company
    assert submit(pipeline, 3, outcomes, first_span_id=10, byte_size=300)
    wait_until(lambda: writer.writes == [5])
    assert pipeline.stop()


def test_held_spans_count_against_the_bounds_until_folded(log: RecordingLog) -> None:
    writer = FakeWriter()
    writer.gate.clear()
    limits = PipelineLimits(max_queue_spans=10, max_queue_bytes=1000, fold_interval_s=60.0)
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), limits)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert submit(pipeline, 6, outcomes, byte_size=100)
    assert submit(pipeline, 4, outcomes, byte_size=100)
    wait_until(lambda: len(outcomes) == 2)  # acknowledged, still held in memory
    assert not submit(pipeline, 1, outcomes, byte_size=100)  # 11 spans > 10
    threading.Timer(0.1, writer.gate.set).start()
    pipeline.flush()
    assert submit(pipeline, 1, outcomes, byte_size=100)  # room again once folded
    bytes_bound = IngestPipeline(
        writer, RecordingLog(log.path + "2"), decode_record, CollectorMetrics(), PipelineLimits(max_queue_bytes=150)
    )
    writer.gate.clear()
    bytes_bound.start()
    assert submit(bytes_bound, 1, outcomes, byte_size=100)
    assert not submit(bytes_bound, 1, outcomes, byte_size=100)  # 200 bytes > 150
    writer.gate.set()
    assert pipeline.stop() and bytes_bound.stop()


def test_a_failing_log_refuses_batches_then_recovers(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics())
    pipeline.start()
    log.failing = True
    outcomes: list[WriteOutcome] = []
    submit(pipeline, 1, outcomes)
    wait_until(lambda: len(outcomes) == 1)
    assert not outcomes[0].ok and "No space left" in str(outcomes[0].error)
    assert not pipeline.healthy and pipeline.queued_spans == 0
    log.failing = False
    submit(pipeline, 1, outcomes)
    wait_until(lambda: len(outcomes) == 2)
    assert outcomes[1].ok and pipeline.healthy
    assert pipeline.stop()
    assert writer.writes == [1]  # only the acknowledged batch reached the store


def test_a_failing_store_keeps_what_was_acknowledged_and_refuses_more_until_it_recovers(
    log: RecordingLog,
) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), PipelineLimits(fold_interval_s=0.05))
    pipeline.start()
    writer.failing = True
    outcomes: list[WriteOutcome] = []
    submit(pipeline, 2, outcomes)
    wait_until(lambda: len(outcomes) == 1)
    assert outcomes[0].ok  # logged: the store's trouble comes after the acknowledgement
    wait_until(lambda: not pipeline.healthy)
    submit(pipeline, 1, outcomes, first_span_id=9)
    wait_until(lambda: len(outcomes) == 2)
    assert not outcomes[1].ok and "disk full" in str(outcomes[1].error)
    assert log.replay() != []  # the acknowledged batch is still in the log
    writer.failing = False
    wait_until(lambda: pipeline.healthy and log.size_bytes == 0)  # retried by itself, no new traffic needed
    assert writer.writes == [2]
    assert pipeline.stop()


def test_stop_logs_and_folds_everything_and_then_refuses(log: RecordingLog) -> None:
    writer = FakeWriter()
    writer.gate.clear()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    for n in range(3):
        submit(pipeline, 1, outcomes, first_span_id=n + 1)
    threading.Timer(0.2, writer.gate.set).start()
    assert pipeline.stop(timeout_s=5)
    assert len(outcomes) == 3 and all(o.ok for o in outcomes)
    assert sum(writer.writes) == 3 and log.size_bytes == 0
    assert not submit(pipeline, 1, outcomes)


def test_what_the_log_holds_at_start_is_folded_first(tmp_path: Path) -> None:
    last_run = IngestLog(str(tmp_path / "spans.ingest"))
    last_run.append([record_of(2), record_of(3, first_span_id=5)])
    last_run.close()  # as if killed before folding
    writer = FakeWriter()
    log = RecordingLog(str(tmp_path / "spans.ingest"))
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    wait_until(lambda: writer.writes == [5] and log.size_bytes == 0)
    assert pipeline.stop()


def test_a_crash_in_the_middle_of_a_fold_leaves_its_sealed_segment_to_the_next_start(tmp_path: Path) -> None:
    last_run = IngestLog(str(tmp_path / "spans.ingest"))
    last_run.append([record_of(2)])
    last_run.seal()  # the fold had sealed it when the process died
    last_run.append([record_of(3, first_span_id=5)])  # acknowledged while that fold ran
    last_run.close()
    writer = FakeWriter()
    log = RecordingLog(str(tmp_path / "spans.ingest"))
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    wait_until(lambda: writer.writes == [5] and log.size_bytes == 0)
    assert sorted(os.listdir(tmp_path)) == ["spans.ingest"]
    assert pipeline.stop()


def test_a_store_failing_at_stop_leaves_the_batches_in_the_log_for_the_next_start(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), NO_TIMED_FOLD)
    pipeline.start()
    assert asyncio.run(pipeline.write(batch_of(4), record_of(4))) is not None
    writer.failing = True
    assert pipeline.stop()
    log.close()
    assert IngestLog(log.path).replay() == [record_of(4)]


def test_periodic_tasks_run_on_the_folder_thread_between_folds(log: RecordingLog) -> None:
    ran: list[str] = []
    task = PeriodicTask(0.05, lambda: ran.append(threading.current_thread().name))
    pipeline = IngestPipeline(FakeWriter(), log, decode_record, CollectorMetrics(), periodic=(task,))
    pipeline.start()
    wait_until(lambda: len(ran) >= 2)
    assert set(ran) == {"fluoro-folder"}  # where the store is written: retention never races a fold
    assert pipeline.stop()


@pytest.mark.parametrize("spans", [0, 1])
def test_metrics_exposition_mentions_the_queue(spans: int, log: RecordingLog) -> None:
    metrics = CollectorMetrics()
    IngestPipeline(FakeWriter(), log, decode_record, metrics)
    assert b"fluoro_queue_spans" in metrics.exposition()


def test_small_groups_linger_briefly_to_share_an_append(log: RecordingLog) -> None:
    pipeline = IngestPipeline(
        FakeWriter(), log, decode_record, CollectorMetrics(), PipelineLimits(linger_s=0.3, linger_until_spans=100)
    )
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    submit(pipeline, 1, outcomes)
    time.sleep(0.05)
    submit(pipeline, 1, outcomes)
    wait_until(lambda: len(outcomes) == 2)
    assert log.appends == [2]  # one append (one fsync) for both
    submit(pipeline, 150, outcomes)  # past linger_until_spans: no waiting
    wait_until(lambda: len(outcomes) == 3, timeout_s=0.25)
    assert pipeline.stop()


def test_a_lone_closed_loop_sender_is_not_kept_waiting_for_company(log: RecordingLog) -> None:
    limits = PipelineLimits(linger_s=2.0, bulk_linger_s=2.0)
    pipeline = IngestPipeline(FakeWriter(), log, decode_record, CollectorMetrics(), limits)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    for sent in range(1, 4):  # each waits for its answer before sending again, as an exporter does
        submit(pipeline, 600, outcomes, sender=("127.0.0.1", 5000))
        wait_until(lambda sent=sent: len(outcomes) == sent, timeout_s=1.0)
    assert log.appends == [1, 1, 1]
    assert pipeline.stop()


def test_the_writer_waits_for_a_sender_active_a_moment_ago_then_logs_both_at_once(log: RecordingLog) -> None:
    limits = PipelineLimits(linger_s=0.05, bulk_linger_s=1.0, active_sender_s=10.0)
    pipeline = IngestPipeline(FakeWriter(), log, decode_record, CollectorMetrics(), limits)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    submit(pipeline, 600, outcomes, sender=a)
    submit(pipeline, 600, outcomes, sender=b)
    wait_until(lambda: len(outcomes) == 2)
    submit(pipeline, 600, outcomes, sender=a)
    time.sleep(0.3)  # b sent a moment ago: its next batch is worth waiting for
    assert len(outcomes) == 2
    submit(pipeline, 600, outcomes, sender=b)
    wait_until(lambda: len(outcomes) == 4, timeout_s=0.3)  # both waiting now: no more lingering
    assert log.appends[-1] == 2
    assert pipeline.stop()
