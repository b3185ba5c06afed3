"""The acknowledging writer's linger: asked directly on a manual clock, and seen from a pipeline."""

from __future__ import annotations

import pytest

from collector.ingest.ack_writer import AckWriter
from collector.ingest.clock import SystemClock
from collector.ingest.health import Health
from collector.ingest.held_budget import HeldBudget
from collector.ingest.ingest_log import IngestLog
from collector.ingest.ledger import Ledger
from collector.ingest.limits import PipelineLimits
from collector.ingest.pending import Pending, WriteOutcome
from tests.clocks import ManualClock
from tests.unit.collector.pipeline_support import FakeWriter, RecordingLog, batch_of, started, submit
from tests.waiting import has_length, wait_until


def writer_of(log: IngestLog, clock: ManualClock, limits: PipelineLimits) -> AckWriter:
    """An acknowledging writer whose thread is never started: its rule is asked directly."""
    budget = HeldBudget(limits.max_queue_spans, limits.max_queue_bytes)
    return AckWriter(Ledger(log, clock), budget, Health(), limits, clock)


def pending(spans: int, sender: object = None, record: bytes = b"r") -> Pending:
    return Pending(batch_of(spans), 1, lambda outcome: None, sender, record)


def test_a_small_group_lingers_for_company_and_a_large_one_does_not(log: RecordingLog, clock: ManualClock) -> None:
    writer = writer_of(log, clock, PipelineLimits(linger_s=0.3, bulk_linger_s=0.5, linger_until_spans=1000))
    start = clock.monotonic()
    assert writer.submit(pending(1))
    assert writer.linger_left_s(start + 0.1) == pytest.approx(0.2)
    assert writer.linger_left_s(start + 0.3) <= 0
    assert writer.submit(pending(600))  # a bulk exporter's batch: waits longer for company
    assert writer.linger_left_s(start + 0.3) == pytest.approx(0.2)
    assert writer.submit(pending(500))  # past linger_until_spans: no waiting at all
    assert writer.linger_left_s(start) <= 0


def test_small_groups_that_linger_share_one_append(log: RecordingLog, clock: ManualClock) -> None:
    pipeline = started(FakeWriter(), log, clock, PipelineLimits(linger_s=0.3, linger_until_spans=100))
    outcomes: list[WriteOutcome] = []
    submit(pipeline, 1, outcomes)
    submit(pipeline, 1, outcomes)
    clock.advance(0.3)
    wait_until(lambda: len(outcomes) == 2)
    assert log.appends == [2]  # one append (one fsync) for both
    submit(pipeline, 150, outcomes)  # past linger_until_spans: logged with no time passing
    wait_until(lambda: len(outcomes) == 3)
    assert pipeline.stop()


def test_a_lone_closed_loop_sender_is_not_kept_waiting_for_company(log: RecordingLog, clock: ManualClock) -> None:
    pipeline = started(FakeWriter(), log, clock, PipelineLimits(linger_s=2.0, bulk_linger_s=2.0))
    outcomes: list[WriteOutcome] = []
    for sent in range(1, 4):  # each waits for its answer before sending again, as an exporter does
        submit(pipeline, 600, outcomes, sender=("127.0.0.1", 5000))
        wait_until(has_length(outcomes, sent))  # no time passes: it did not linger
    assert log.appends == [1, 1, 1]
    assert pipeline.stop()


def test_the_writer_waits_for_a_sender_active_a_moment_ago_but_not_once_all_are_waiting(
    log: RecordingLog, clock: ManualClock
) -> None:
    writer = writer_of(log, clock, PipelineLimits(linger_s=0.05, bulk_linger_s=1.0, active_sender_s=10.0))
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    start = clock.monotonic()
    assert writer.submit(pending(600, a)) and writer.submit(pending(600, b))
    assert writer.linger_left_s(start) <= 0  # both waiting: nothing more can come
    writer.pop_group()  # as the thread takes a group
    assert writer.submit(pending(600, a))
    assert writer.linger_left_s(start + 0.3) == pytest.approx(0.7)  # b sent a moment ago
    assert writer.submit(pending(600, b))
    assert writer.linger_left_s(start + 0.3) <= 0


def test_a_sender_silent_past_the_active_window_is_not_waited_for(log: RecordingLog, clock: ManualClock) -> None:
    writer = writer_of(log, clock, PipelineLimits(linger_s=0.05, bulk_linger_s=30.0, active_sender_s=10.0))
    assert writer.submit(pending(600, "quiet"))
    writer.pop_group()
    clock.advance(11.0)
    start = clock.monotonic()
    assert writer.submit(pending(600, "busy"))
    assert writer.linger_left_s(start) <= 0  # "quiet" sent 11 s ago: not coming back in a linger


def test_a_sender_refused_for_a_full_queue_is_not_waited_for(log: RecordingLog, clock: ManualClock) -> None:
    limits = PipelineLimits(max_queue_spans=2000, linger_s=0.05, bulk_linger_s=1.0, active_sender_s=10.0)
    writer = writer_of(log, clock, limits)
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    assert writer.submit(pending(600, a)) and writer.submit(pending(600, b))
    writer.pop_group()  # logged; its spans stay held until folded
    start = clock.monotonic()
    assert writer.submit(pending(600, a))
    assert writer.linger_left_s(start) == pytest.approx(1.0)  # b sent a moment ago: worth waiting for
    assert not writer.submit(pending(600, b))  # the bound is full: b is told to come back later
    assert writer.linger_left_s(start) <= 0


def test_the_system_clock_reads_monotonic_time() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    assert clock.monotonic() >= first
