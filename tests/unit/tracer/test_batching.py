"""The tracer's own batch processor: batching, the queue bound, flush, shutdown, fork, sampled only."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from tracer.batching import ExportEachSpan, SpanBatcher
from tracer.sdk_exporters import ExporterSink

WAIT_S = 5.0


class Sink:
    """Records batches; can be held (deliver blocks until released) or told to fail."""

    def __init__(self, *, answer: bool = True) -> None:
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.answer = answer
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.closed = False
        self.changed = threading.Condition()

    def deliver(self, spans: Sequence[ReadableSpan]) -> bool:
        self.entered.set()
        self.open.wait(WAIT_S)
        with self.changed:
            self.batches.append([span.name for span in spans])
            self.threads.append(threading.current_thread().name)
            self.changed.notify_all()
        return self.answer

    def shutdown(self) -> None:
        self.closed = True

    def wait_for(self, batches: int) -> list[list[str]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.batches) >= batches, WAIT_S)
            return list(self.batches)


def span(name: str, *, sampled: bool = True) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return ReadableSpan(name=name, context=SpanContext(0xABC, 0x1 + len(name), False, flags))


def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_timer_or_a_flush() -> None:
    sink = Sink()
    batcher = SpanBatcher(sink, delay_ms=60_000, max_batch=3)
    for n in range(7):
        batcher.on_end(span(f"s{n}"))
    assert sink.wait_for(2) == [["s0", "s1", "s2"], ["s3", "s4", "s5"]]
    time.sleep(0.1)
    assert len(sink.batches) == 2  # s6 waits: not a whole batch, and the timer is a minute
    assert batcher.force_flush() is True
    assert sink.batches[-1] == ["s6"] and sink.threads[-1] == threading.current_thread().name
    batcher.shutdown()


def test_the_timer_sends_a_partial_batch() -> None:
    sink = Sink()
    batcher = SpanBatcher(sink, delay_ms=50)
    batcher.on_end(span("alone"))
    assert sink.wait_for(1) == [["alone"]]
    assert sink.threads == ["FluoroSpanBatcher"]
    batcher.shutdown()


def test_unsampled_spans_are_never_sent() -> None:
    sink = Sink()
    batcher = SpanBatcher(sink, delay_ms=60_000)
    batcher.on_end(span("quiet", sampled=False))
    batcher.on_end(span("kept"))
    batcher.force_flush()
    assert sink.batches == [["kept"]]
    batcher.shutdown()


def test_a_full_queue_drops_its_oldest_and_says_so_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    sink.open.clear()  # the worker's first delivery blocks, so spans pile up behind it
    batcher = SpanBatcher(sink, delay_ms=60_000, max_queue=4, max_batch=2)
    batcher.on_end(span("a0"))
    batcher.on_end(span("a1"))
    assert sink.entered.wait(WAIT_S)  # the worker took a0, a1 and is held in deliver
    with caplog.at_level(logging.WARNING, logger="tracer.batching"):
        for n in range(10):
            batcher.on_end(span(f"b{n}"))
    assert batcher.dropped_spans == 6
    sink.open.set()
    assert batcher.force_flush() is True
    assert [name for batch in sink.batches for name in batch] == ["a0", "a1", "b6", "b7", "b8", "b9"]
    sink.open.clear()
    sink.entered.clear()
    batcher.on_end(span("c0"))
    batcher.on_end(span("c1"))
    assert sink.entered.wait(WAIT_S)  # held again, with c0 and c1
    with caplog.at_level(logging.WARNING, logger="tracer.batching"):
        for n in range(2, 7):  # full again after deliveries, within the minute: no second line
            batcher.on_end(span(f"c{n}"))
    assert batcher.dropped_spans == 7
    sink.open.set()
    full = [r.message for r in caplog.records if "export queue is full" in r.message]
    assert full == ["fluoro: the export queue is full (4 spans); the oldest give way (1 dropped so far)"]
    batcher.shutdown()


def test_flush_reports_a_failed_delivery_and_a_deadline() -> None:
    failing = Sink(answer=False)
    batcher = SpanBatcher(failing, delay_ms=60_000)
    batcher.on_end(span("refused"))
    assert batcher.force_flush() is False
    assert batcher.force_flush() is True  # nothing waits now
    batcher.shutdown()

    held = Sink()
    held.open.clear()
    slow = SpanBatcher(held, delay_ms=60_000, max_batch=1)
    slow.on_end(span("stuck"))
    assert held.entered.wait(WAIT_S)
    slow.on_end(span("behind"))
    started = time.monotonic()
    assert slow.force_flush(timeout_millis=100) is False  # the worker holds the sending lock
    assert time.monotonic() - started < 2.0
    held.open.set()
    slow.shutdown()
    assert [name for batch in held.batches for name in batch] == ["stuck", "behind"]


def test_a_raising_sink_is_logged_and_the_batcher_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class Raising(Sink):
        def deliver(self, spans: Sequence[ReadableSpan]) -> bool:
            if spans[0].name == "boom":
                raise RuntimeError("sink broke")
            return super().deliver(spans)

    sink = Raising()
    batcher = SpanBatcher(sink, delay_ms=60_000, max_batch=1)
    with caplog.at_level(logging.ERROR, logger="tracer.batching"):
        batcher.on_end(span("boom"))
        batcher.on_end(span("after"))
        assert sink.wait_for(1) == [["after"]]
    assert "fluoro: exporting 1 spans failed" in caplog.text
    batcher.shutdown()


def test_shutdown_sends_what_waits_closes_the_sink_and_ignores_later_spans() -> None:
    sink = Sink()
    batcher = SpanBatcher(sink, delay_ms=60_000)
    batcher.on_end(span("last"))
    batcher.shutdown()
    assert sink.batches == [["last"]] and sink.closed
    batcher.on_end(span("late"))
    assert batcher.force_flush() is False
    batcher.shutdown()  # a second time does nothing
    assert sink.batches == [["last"]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_empty_with_its_own_thread() -> None:
    sink = Sink()
    batcher = SpanBatcher(sink, delay_ms=60_000, max_batch=2)
    batcher.on_end(span("parents"))  # half a batch: it waits in the parent's queue
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its worker sends, then leave without pytest's teardown
        try:
            sink.batches.clear()
            batcher.on_end(span("c1"))
            batcher.on_end(span("c2"))  # a whole batch wakes the child's own worker
            os.write(write_fd, repr(sink.wait_for(1)).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as reader:
        reported = reader.read()
    os.waitpid(pid, 0)
    assert reported == repr([["c1", "c2"]])  # not the parent's span, and sent without a flush
    batcher.force_flush()
    assert sink.batches == [["parents"]]
    batcher.shutdown()


def test_export_each_span_sends_on_the_ending_thread() -> None:
    sink = Sink()
    processor = ExportEachSpan(sink)
    processor.on_end(span("one"))
    processor.on_end(span("skipped", sampled=False))
    assert sink.batches == [["one"]] and sink.threads == [threading.current_thread().name]
    processor.shutdown()
    processor.on_end(span("after"))
    assert sink.batches == [["one"]] and sink.closed and processor.force_flush() is False


def test_an_sdk_exporter_runs_with_instrumentation_suppressed() -> None:
    class Recording(SpanExporter):
        def __init__(self) -> None:
            self.suppressed: list[object] = []

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.suppressed.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            return SpanExportResult.FAILURE if spans[0].name == "no" else SpanExportResult.SUCCESS

    exporter = Recording()
    sink = ExporterSink(exporter)
    assert sink.deliver([span("yes")]) is True
    assert sink.deliver([span("no")]) is False
    assert exporter.suppressed == [True, True]
    assert get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None
