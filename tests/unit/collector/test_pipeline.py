"""The ingest pipeline with a fake store and a real ingest log: acknowledged once logged,
folded into the store in one write, bounded, failing and recovering, replayed at start.

Time is a manual clock (tests/clocks.py): a test moves it past a linger or a fold interval
instead of sleeping, and the writer's linger rule is asked directly where a test would
otherwise wait to see that nothing happens."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from collector.ingest.held_budget import HeldBudget
from collector.ingest.ingest_log import IngestLog
from collector.ingest.limits import PipelineLimits
from collector.ingest.pending import WriteOutcome
from collector.ingest.periodic import PeriodicTask
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics
from tests.clocks import ManualClock
from tests.unit.collector.pipeline_support import (
    PROMPT,
    FakeWriter,
    RecordingLog,
    batch_of,
    decode_record,
    record_of,
    started,
    submit,
)
from tests.waiting import has_length, wait_until


def test_a_batch_is_acknowledged_once_logged_and_folded_into_the_store_after_the_interval(
    log: RecordingLog, clock: ManualClock
) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    outcome = asyncio.run(pipeline.write(batch_of(3), record_of(3)))
    assert outcome is not None and outcome.ok and outcome.spans == 3
    assert writer.writes == [] and log.size_bytes > 0  # durable, not yet in the store
    clock.advance(PROMPT.fold_interval_s)
    wait_until(lambda: writer.writes == [3] and log.size_bytes == 0)
    assert log.replay() == []  # emptied once folded
    assert pipeline.stop()


def test_waiting_batches_share_one_append_and_many_appends_one_fold(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    outcomes: list[WriteOutcome] = []
    assert submit(pipeline, 1, outcomes, byte_size=10)
    wait_until(lambda: len(outcomes) == 1)
    for _ in range(5):
        assert submit(pipeline, 2, outcomes, byte_size=10)
    wait_until(lambda: len(outcomes) == 6)
    assert all(o.ok for o in outcomes)
    assert log.appends[0] == 1 and sum(log.appends) == 6
    pipeline.flush()
    assert writer.writes == [11]
    assert pipeline.stop()


def test_a_batch_without_a_record_is_held_in_memory_only_and_folded_like_the_rest(
    log: RecordingLog, clock: ManualClock
) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    outcomes: list[WriteOutcome] = []
    assert pipeline.submit(batch_of(2), 1, outcomes.append)  # as X-Ray's UDP receiver submits: no answer waits
    assert submit(pipeline, 3, outcomes, first_span_id=10)
    wait_until(lambda: len(outcomes) == 2)
    assert all(o.ok for o in outcomes)
    assert log.replay() == [record_of(3, 10)]
    pipeline.flush()
    assert writer.writes == [5]
    assert pipeline.stop()


def test_flush_brings_every_acknowledged_batch_into_the_store(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    pipeline.flush()  # nothing logged: returns at once
    assert writer.writes == []
    for n in range(3):
        assert asyncio.run(pipeline.write(batch_of(2, first_span_id=10 * n + 1), record_of(2, 10 * n + 1))) is not None
    assert writer.writes == []
    pipeline.flush()
    assert writer.writes == [6] and pipeline.queued_spans == 0
    assert pipeline.stop()


def test_batches_are_acknowledged_while_a_fold_is_in_the_store(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
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


def test_enough_logged_spans_are_folded_without_waiting_for_the_interval(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock, PipelineLimits(linger_s=0.0, fold_interval_s=60.0, fold_spans=5))
    outcomes: list[WriteOutcome] = []
    for n in range(3):
        submit(pipeline, 2, outcomes, first_span_id=10 * n)
        wait_until(has_length(outcomes, n + 1))  # one append each, so the third passes fold_spans
    wait_until(lambda: sum(writer.writes) == 6)
    assert pipeline.stop()


@pytest.mark.parametrize("bound", ["spans", "bytes"])
def test_a_fold_starts_once_half_the_bounds_are_logged(bound: str, log: RecordingLog, clock: ManualClock) -> None:
    # Folding only at fold_spans would wait for the interval once the bounds refuse the rest.
    writer = FakeWriter()
    limits = (
        PipelineLimits(max_queue_spans=10, linger_s=0.0, fold_interval_s=60.0)
        if bound == "spans"
        else PipelineLimits(max_queue_bytes=1000, linger_s=0.0, fold_interval_s=60.0)
    )
    pipeline = started(writer, log, clock, limits)
    outcomes: list[WriteOutcome] = []
    assert submit(pipeline, 2, outcomes, byte_size=300)
    wait_until(lambda: len(outcomes) == 1)  # under half of both bounds: held for company
    assert submit(pipeline, 3, outcomes, first_span_id=10, byte_size=300)
    wait_until(lambda: writer.writes == [5])  # one fold of both: the first was not folded alone
    assert pipeline.stop()


def test_held_spans_count_against_the_bounds_until_folded(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    writer.gate.clear()
    pipeline = started(writer, log, clock, PipelineLimits(max_queue_spans=10, max_queue_bytes=1000, linger_s=0.0))
    outcomes: list[WriteOutcome] = []
    assert submit(pipeline, 6, outcomes, byte_size=100)
    assert submit(pipeline, 4, outcomes, byte_size=100)
    wait_until(lambda: len(outcomes) == 2)  # acknowledged, still held in memory
    assert not submit(pipeline, 1, outcomes, byte_size=100)  # 11 spans > 10
    writer.gate.set()
    pipeline.flush()
    assert submit(pipeline, 1, outcomes, byte_size=100)  # room again once folded
    assert pipeline.stop()


def test_the_bytes_bound_refuses_what_would_pass_it_but_never_a_first_batch() -> None:
    budget = HeldBudget(max_spans=100, max_bytes=150)
    assert budget.try_take(1, 100)
    assert not budget.try_take(1, 100)  # 200 bytes > 150
    budget.give_back(1, 100)
    assert budget.try_take(1, 1000)  # alone it passes, however large: it could never pass otherwise
    assert (budget.spans, budget.byte_count) == (1, 1000)


def test_a_failing_log_refuses_batches_then_recovers(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    log.failing = True
    outcomes: list[WriteOutcome] = []
    submit(pipeline, 1, outcomes)
    wait_until(lambda: len(outcomes) == 1)
    assert not outcomes[0].ok and "No space left" in str(outcomes[0].error)
    assert not pipeline.healthy and pipeline.queued_spans == 0
    log.failing = False
    submit(pipeline, 1, outcomes)
    clock.advance(1.0)  # the writer pauses before it tries the log again
    wait_until(lambda: len(outcomes) == 2)
    assert outcomes[1].ok and pipeline.healthy
    assert pipeline.stop()
    assert writer.writes == [1]  # only the acknowledged batch reached the store


def test_a_failing_store_keeps_what_was_acknowledged_and_refuses_more_until_it_recovers(
    log: RecordingLog, clock: ManualClock
) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    writer.failing = True
    outcomes: list[WriteOutcome] = []
    submit(pipeline, 2, outcomes)
    wait_until(lambda: len(outcomes) == 1)
    assert outcomes[0].ok  # logged: the store's trouble comes after the acknowledgement
    clock.advance(PROMPT.fold_interval_s)
    wait_until(lambda: not pipeline.healthy)
    submit(pipeline, 1, outcomes, first_span_id=9)
    wait_until(lambda: len(outcomes) == 2)
    assert not outcomes[1].ok and "disk full" in str(outcomes[1].error)
    assert log.replay() != []  # the acknowledged batch is still in the log
    writer.failing = False
    clock.advance(1.0)  # past the pause between tries: retried by itself, no new traffic needed
    wait_until(lambda: pipeline.healthy and log.size_bytes == 0)
    assert writer.writes == [2]
    assert pipeline.stop()


def test_stop_logs_and_folds_everything_and_then_refuses(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    writer.gate.clear()
    pipeline = started(writer, log, clock, PipelineLimits(linger_s=10.0, fold_interval_s=60.0))
    outcomes: list[WriteOutcome] = []
    for n in range(3):
        submit(pipeline, 1, outcomes, first_span_id=n + 1)
    stopping = threading.Thread(target=pipeline.stop, kwargs={"timeout_s": 5})
    stopping.start()  # the linger is cut short: stopping logs at once
    wait_until(lambda: len(outcomes) == 3)
    assert all(o.ok for o in outcomes) and not submit(pipeline, 1, outcomes)
    writer.gate.set()  # the last fold may finish
    stopping.join(5)
    assert sum(writer.writes) == 3 and log.size_bytes == 0


def test_what_the_log_holds_at_start_is_folded_first(tmp_path: Path, clock: ManualClock) -> None:
    last_run = IngestLog(str(tmp_path / "spans.ingest"))
    last_run.append([record_of(2), record_of(3, first_span_id=5)])
    last_run.close()  # as if killed before folding
    writer = FakeWriter()
    log = RecordingLog(str(tmp_path / "spans.ingest"))
    pipeline = started(writer, log, clock)
    wait_until(lambda: writer.writes == [5] and log.size_bytes == 0)
    assert pipeline.stop()
    log.close()


def test_a_crash_in_the_middle_of_a_fold_leaves_its_sealed_segment_to_the_next_start(
    tmp_path: Path, clock: ManualClock
) -> None:
    last_run = IngestLog(str(tmp_path / "spans.ingest"))
    last_run.append([record_of(2)])
    last_run.seal()  # the fold had sealed it when the process died
    last_run.append([record_of(3, first_span_id=5)])  # acknowledged while that fold ran
    last_run.close()
    writer = FakeWriter()
    log = RecordingLog(str(tmp_path / "spans.ingest"))
    pipeline = started(writer, log, clock)
    wait_until(lambda: writer.writes == [5] and log.size_bytes == 0)
    assert sorted(os.listdir(tmp_path)) == ["spans.ingest", "spans.ingest.lock"]
    assert pipeline.stop()
    log.close()


def test_a_store_failing_at_stop_leaves_the_batches_in_the_log_for_the_next_start(
    log: RecordingLog, clock: ManualClock
) -> None:
    writer = FakeWriter()
    pipeline = started(writer, log, clock)
    assert asyncio.run(pipeline.write(batch_of(4), record_of(4))) is not None
    writer.failing = True
    assert pipeline.stop()
    log.close()
    again = IngestLog(log.path)
    assert again.replay() == [record_of(4)]
    again.close()


def test_periodic_tasks_run_on_the_folder_thread_between_folds(log: RecordingLog, clock: ManualClock) -> None:
    ran: list[str] = []
    task = PeriodicTask(5.0, lambda: ran.append(threading.current_thread().name))
    pipeline = started(FakeWriter(), log, clock, periodic=(task,))
    for runs in (1, 2):
        clock.advance(5.0)
        wait_until(has_length(ran, runs))
    assert set(ran) == {"fluoro-folder"}  # where the store is written: retention never races a fold
    assert pipeline.stop()


@pytest.mark.parametrize("spans", [0, 1])
def test_metrics_exposition_mentions_the_queue(spans: int, log: RecordingLog) -> None:
    metrics = CollectorMetrics()
    IngestPipeline(FakeWriter(), log, decode_record, metrics)
    assert b"fluoro_queue_spans" in metrics.exposition()


def test_a_pipeline_on_the_system_clock_acknowledges_and_folds(log: RecordingLog) -> None:
    writer = FakeWriter()
    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), PipelineLimits(fold_interval_s=0.05))
    pipeline.start()
    outcome = asyncio.run(pipeline.write(batch_of(3), record_of(3)))
    assert outcome is not None and outcome.ok
    wait_until(lambda: writer.writes == [3])
    assert pipeline.stop()
