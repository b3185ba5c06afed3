"""Process start time and the init-span buffer."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from tests.conftest import make_recorder
from tracer.coldstart import InitSpanBuffer, process_start_time_ns


def test_process_start_time_is_before_now_and_recent() -> None:
    started = process_start_time_ns()
    assert started is not None
    now = time.time_ns()
    assert now - 24 * 3600 * 10**9 < started <= now


def test_process_start_time_without_proc_is_none(tmp_path: Path) -> None:
    assert process_start_time_ns(str(tmp_path)) is None


def test_buffer_holds_then_rehomes_or_drops() -> None:
    tracing, _ = make_recorder()
    exporter = InMemorySpanExporter()
    buffer = InitSpanBuffer(SimpleSpanProcessor(exporter), holding=True, max_spans=2)
    for name in ("a", "b", "c"):
        span = tracing.spans.start(name)
        span.end()
        buffer.on_end(span)  # type: ignore[arg-type]
    # Past max_spans the rest pass straight through: memory stays bounded.
    assert [s.name for s in exporter.get_finished_spans()] == ["c"]
    init = SpanContext(0xABCDEF, 0x42, False, TraceFlags(1))
    moved = buffer.release(0xABCDEF, init)
    assert [(s.name, s.context.trace_id, s.parent.span_id if s.parent else None) for s in moved] == [
        ("a", 0xABCDEF, 0x42),
        ("b", 0xABCDEF, 0x42),
    ]
    late = tracing.spans.start("late")
    late.end()
    buffer.on_end(late)  # type: ignore[arg-type]
    assert [s.name for s in exporter.get_finished_spans()] == ["c", "a", "b", "late"]

    dropping = InitSpanBuffer(SimpleSpanProcessor(exporter), holding=True)
    span = tracing.spans.start("unsampled first invocation")
    span.end()
    dropping.on_end(span)  # type: ignore[arg-type]
    assert dropping.release(None, None) == []
    assert len(exporter.get_finished_spans()) == 4
