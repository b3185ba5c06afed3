"""The ingest pipeline with a fake writer: group commit, bounds, failure and recovery."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from collector.metrics import CollectorMetrics
from collector.model import SpanBatch, SpanBatchBuilder
from collector.pipeline import IngestPipeline, PeriodicTask, PipelineLimits, WriteOutcome
from collector.storage.protocols import StoreUnavailable
from tests.factories import span_row


def batch_of(spans: int) -> SpanBatch:
    builder = SpanBatchBuilder()
    for i in range(spans):
        builder.add_span(span_row(trace_id=bytes(15) + b"\x01", span_id=i + 1))
    return builder.build()


class FakeWriter:
    """Records the groups it is given; can be told to fail, or to block until released."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()

    def write(self, batches: Sequence[SpanBatch]) -> int:
        self.gate.wait(5)
        if self.failing:
            raise StoreUnavailable("disk full")
        self.groups.append(len(batches))
        return sum(b.span_count for b in batches)


def collect(outcomes: list[WriteOutcome]):  # type: ignore[no-untyped-def]
    return outcomes.append


def wait_until(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_waiting_batches_are_committed_together() -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, CollectorMetrics())
    writer.gate.clear()
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert pipeline.submit(batch_of(1), 10, collect(outcomes))
    wait_until(lambda: pipeline.queued_spans == 1 and not pipeline._queue)  # the first group is in the writer
    for _ in range(5):
        assert pipeline.submit(batch_of(2), 10, collect(outcomes))
    writer.gate.set()
    wait_until(lambda: len(outcomes) == 6)
    assert writer.groups == [1, 5]
    assert all(o.ok for o in outcomes)
    assert [o.stored for o in outcomes] == [1] + [10] * 5  # new spans stored by the commit it was part of
    assert pipeline.stop()


def test_a_full_queue_refuses_at_once() -> None:
    writer = FakeWriter()
    writer.gate.clear()
    pipeline = IngestPipeline(writer, CollectorMetrics(), PipelineLimits(max_queue_spans=10, max_queue_bytes=1000))
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert pipeline.submit(batch_of(6), 100, collect(outcomes))
    assert pipeline.submit(batch_of(4), 100, collect(outcomes))
    assert not pipeline.submit(batch_of(1), 100, collect(outcomes))  # 11 spans > 10
    writer.gate.set()
    wait_until(lambda: len(outcomes) == 2)
    assert pipeline.submit(batch_of(1), 100, collect(outcomes))  # room again once written
    bytes_bound = IngestPipeline(writer, CollectorMetrics(), PipelineLimits(max_queue_bytes=150))
    writer.gate.clear()
    bytes_bound.start()
    assert bytes_bound.submit(batch_of(1), 100, collect(outcomes))
    wait_until(lambda: not bytes_bound._queue)
    assert bytes_bound.submit(batch_of(1), 100, collect(outcomes))
    assert not bytes_bound.submit(batch_of(1), 100, collect(outcomes))
    writer.gate.set()
    assert pipeline.stop() and bytes_bound.stop()


def test_failing_store_fails_batches_then_recovers() -> None:
    writer = FakeWriter()
    writer.failing = True
    pipeline = IngestPipeline(writer, CollectorMetrics())
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    pipeline.submit(batch_of(1), 1, collect(outcomes))
    wait_until(lambda: len(outcomes) == 1)
    assert not outcomes[0].ok and "disk full" in str(outcomes[0].error)
    assert not pipeline.healthy
    writer.failing = False
    pipeline.submit(batch_of(1), 1, collect(outcomes))
    wait_until(lambda: len(outcomes) == 2)
    assert outcomes[1].ok and pipeline.healthy
    assert pipeline.stop()


def test_stop_drains_and_then_refuses() -> None:
    writer = FakeWriter()
    writer.gate.clear()
    pipeline = IngestPipeline(writer, CollectorMetrics())
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    for _ in range(3):
        pipeline.submit(batch_of(1), 1, collect(outcomes))
    threading.Timer(0.2, writer.gate.set).start()
    assert pipeline.stop(timeout_s=5)
    assert len(outcomes) == 3 and all(o.ok for o in outcomes)
    assert not pipeline.submit(batch_of(1), 1, collect(outcomes))


def test_async_write_waits_for_the_commit() -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, CollectorMetrics())
    pipeline.start()
    outcome = asyncio.run(pipeline.write(batch_of(3), 1))
    assert outcome is not None and outcome.stored == 3
    assert pipeline.stop()


def test_periodic_tasks_run_on_the_writer_thread() -> None:
    ran: list[str] = []
    task = PeriodicTask(0.05, lambda: ran.append(threading.current_thread().name))
    pipeline = IngestPipeline(FakeWriter(), CollectorMetrics(), periodic=(task,))
    pipeline.start()
    wait_until(lambda: len(ran) >= 2)
    assert set(ran) == {"fluoro-writer"}
    assert pipeline.stop()


@pytest.mark.parametrize("spans", [0, 1])
def test_metrics_exposition_mentions_the_queue(spans: int) -> None:
    metrics = CollectorMetrics()
    IngestPipeline(FakeWriter(), metrics)
    assert b"fluoro_queue_spans" in metrics.exposition()


def test_small_groups_linger_briefly_to_share_a_commit() -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, CollectorMetrics(), PipelineLimits(linger_s=0.3, linger_until_spans=100))
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    pipeline.submit(batch_of(1), 1, collect(outcomes))
    time.sleep(0.05)
    pipeline.submit(batch_of(1), 1, collect(outcomes))
    wait_until(lambda: len(outcomes) == 2)
    assert writer.groups == [2]  # one commit for both
    pipeline.submit(batch_of(150), 1, collect(outcomes))  # past linger_until_spans: no waiting
    wait_until(lambda: len(outcomes) == 3, timeout_s=0.25)
    assert pipeline.stop()


def test_a_lone_closed_loop_sender_is_not_kept_waiting_for_company() -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, CollectorMetrics(), PipelineLimits(linger_s=2.0, bulk_linger_s=2.0))
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    for sent in range(1, 4):  # each waits for its answer before sending again, as an exporter does
        pipeline.submit(batch_of(600), 1, collect(outcomes), sender=("127.0.0.1", 5000))
        wait_until(lambda sent=sent: len(outcomes) == sent, timeout_s=1.0)
    assert writer.groups == [1, 1, 1]
    assert pipeline.stop()


def test_the_writer_waits_for_a_sender_active_a_moment_ago_then_writes_both_at_once() -> None:
    writer = FakeWriter()
    limits = PipelineLimits(linger_s=0.05, bulk_linger_s=1.0, active_sender_s=10.0)
    pipeline = IngestPipeline(writer, CollectorMetrics(), limits)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    pipeline.submit(batch_of(600), 1, collect(outcomes), sender=a)
    pipeline.submit(batch_of(600), 1, collect(outcomes), sender=b)
    wait_until(lambda: len(outcomes) == 2)
    pipeline.submit(batch_of(600), 1, collect(outcomes), sender=a)
    time.sleep(0.3)  # b sent a moment ago: its next batch is worth waiting for
    assert len(outcomes) == 2
    pipeline.submit(batch_of(600), 1, collect(outcomes), sender=b)
    wait_until(lambda: len(outcomes) == 4, timeout_s=0.3)  # both waiting now: no more lingering
    assert writer.groups[-1] == 2
    assert pipeline.stop()
