"""Tail-keep: traces head sampling dropped are exported whole when they fail, and only then."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.trace import SpanKind

import tracer
from tracer import semconv
from tracer.coldstart import ProcessFacts
from tracer.propagation import build_propagator
from tracer.runtime import Tracing
from tracer.sampling_weight import weight_of
from tracer.settings import Settings, tail_keep_settings
from tracer.tail_keep import TailKeepSettings
from tracer.taxonomy import mark_http_status


class Pipeline:
    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self.exporter = exporter

    def exported(self) -> list[ReadableSpan]:
        self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    def reasons(self) -> dict[str, str | None]:
        return {s.name: str((s.attributes or {}).get(semconv.SAMPLING)) for s in self.exported()}


def pipeline(sampler: str = "always_off", lambda_environment: bool = False, **tail: Any) -> Pipeline:
    exporter = InMemorySpanExporter()
    settings = Settings(
        service_name="tail",
        sampler=sampler,
        sampler_arg="0.01" if "ratio" in sampler else None,
        lambda_environment=lambda_environment,
        tail_keep=TailKeepSettings(**tail),
    )
    process = ProcessFacts(time.time_ns() - 50_000_000)
    return Pipeline(Tracing(settings, exporter=exporter, batch=False, process=process), exporter)


@pytest.fixture
def unsampled() -> Iterator[Pipeline]:
    """Head sampling keeps nothing: whatever is exported, tail-keep kept."""
    p = pipeline()
    with p.tracing.activated():
        yield p
    p.tracing.shutdown()


@tracer.traced
def lookup(fail: bool) -> int:
    if fail:
        raise KeyError("missing")
    return 1


@tracer.traced(name="checkout")
def checkout(fail: bool = False, status: int | None = None) -> int:
    if status is not None:
        mark_http_status(trace_api.get_current_span(), status, SpanKind.SERVER)
    try:
        return lookup(fail)
    except KeyError:
        return 0  # the child's fault is handled: the root succeeds, the trace is still kept


def test_a_failure_keeps_its_whole_local_trace_and_a_success_keeps_nothing(unsampled: Pipeline) -> None:
    checkout()
    assert unsampled.exported() == []
    checkout(fail=True)
    spans = unsampled.exported()
    assert unsampled.reasons() == {"checkout": "tail:error", "lookup": "tail:error"}
    root, child = (next(s for s in spans if s.name == n) for n in ("checkout", "lookup"))
    assert child.parent is not None and child.parent.span_id == root.context.span_id
    stats = unsampled.tracing.stats()
    assert stats is not None and stats.kept_traces["error"] == 1 and stats.discarded_traces == 1
    assert stats.held_spans == 0 and stats.dropped_spans == 0


def test_what_is_propagated_while_a_tail_span_runs_says_not_sampled(unsampled: Pipeline) -> None:
    headers: dict[str, str] = {}

    @tracer.traced(name="call_downstream")
    def call_downstream() -> None:
        unsampled.tracing.propagator.inject(headers)
        trace_api.get_current_span().set_attribute(semconv.FAULT, True)

    call_downstream()
    assert headers["traceparent"].endswith("-00") and "Sampled=0" in headers["X-Amzn-Trace-Id"]
    assert unsampled.reasons() == {"call_downstream": "tail:error"}


def test_throttles_outrank_errors_and_a_4xx_root_is_an_error(unsampled: Pipeline) -> None:
    checkout(status=429)
    assert set(unsampled.reasons().values()) == {"tail:throttle"}
    unsampled.exporter.clear()
    checkout(status=404)
    assert set(unsampled.reasons().values()) == {"tail:error"}


def test_a_cold_start_is_kept_with_its_initialization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "withdraw")
    p = pipeline(lambda_environment=True)

    @tracer.traced.handler
    def handler(event: object, context: object) -> str:
        return "ok"

    with p.tracing.activated():
        with p.tracing.spans.start("init-work", parent_context=context_api.Context()) as init_work:
            pass  # held by the init buffer until the first invocation
        assert not init_work.get_span_context().trace_flags.sampled
        handler({}, None)
        first = p.reasons()
        p.exporter.clear()
        handler({}, None)  # warm, unsampled, fine: dropped
        assert p.exported() == []
    p.tracing.shutdown()
    assert first == {"withdraw": "tail:cold_start", "Initialization": "tail:cold_start", "init-work": "tail:cold_start"}


def test_a_slow_root_is_kept_when_a_threshold_is_set() -> None:
    p = pipeline(slow_ms=20.0)

    @tracer.traced(name="slow")
    def slow() -> None:
        time.sleep(0.03)

    @tracer.traced
    def quick() -> None:
        pass

    with p.tracing.activated():
        quick()
        slow()
    assert p.reasons() == {"slow": "tail:slow"}
    p.tracing.shutdown()


def test_the_per_trace_cap_counts_drops_and_a_dropped_failure_still_keeps_the_trace() -> None:
    p = pipeline(max_trace_spans=5)
    root = p.tracing.spans.start("root")
    ctx = trace_api.set_span_in_context(root)
    for i in range(20):
        child = p.tracing.spans.start(f"child {i}", parent_context=ctx)
        if i == 19:
            child.set_attribute(semconv.FAULT, True)
        child.end()
    root.end()
    names = [s.name for s in p.exported()]
    assert names == [*(f"child {i}" for i in range(5)), "root"]
    stats = p.tracing.stats()
    assert stats is not None and stats.dropped_spans == 15 and stats.kept_traces["error"] == 1
    p.tracing.shutdown()


def test_the_global_cap_evicts_the_oldest_trace_so_memory_stays_bounded() -> None:
    p = pipeline(max_spans=50)
    roots = [p.tracing.spans.start(f"root {n}", parent_context=context_api.Context()) for n in range(40)]
    for root in roots:  # 40 open traces, 3 children each: 120 spans wanting to be held
        ctx = trace_api.set_span_in_context(root)
        for _ in range(3):
            p.tracing.spans.start("child", parent_context=ctx).end()
    stats = p.tracing.stats()
    assert stats is not None and stats.held_spans <= 50 and stats.dropped_spans >= 70
    roots[-1].set_attribute(semconv.FAULT, True)
    roots[-1].end()
    assert [s.name for s in p.exported()] == ["child"] * 3 + ["root 39"]  # the newest trace was kept whole
    p.tracing.shutdown()


def test_an_unsampled_remote_parent_starts_a_kept_local_part() -> None:
    p = pipeline(sampler="parentbased_always_on")
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    remote = build_propagator(("tracecontext",)).extract(carrier)
    with p.tracing.activated():
        opened = p.tracing.spans.start("handler", kind=SpanKind.SERVER, parent_context=remote)
        opened.set_attribute(semconv.FAULT, True)
        opened.end()
    (span,) = p.exported()
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331 and span.parent.is_remote
    assert span.attributes is not None and span.attributes[semconv.SAMPLING] == "tail:error"
    p.tracing.shutdown()


def test_head_sampled_traces_do_not_pass_through_tail_keep() -> None:
    p = pipeline(sampler="parentbased_always_on")
    with p.tracing.activated():
        checkout()
    assert [s.name for s in p.exported()] == ["lookup", "checkout"]
    assert all(semconv.SAMPLING not in (s.attributes or {}) for s in p.exported())  # the exporter says "head"
    stats = p.tracing.stats()
    assert stats is not None and stats.discarded_traces == 0
    p.tracing.shutdown()


def test_without_tail_keep_an_unsampled_trace_records_nothing() -> None:
    p = pipeline(enabled=False)
    with p.tracing.activated():
        checkout(fail=True)
        assert not trace_api.get_current_span().is_recording()
    assert p.exported() == [] and p.tracing.stats() is None
    p.tracing.shutdown()


def test_a_ratio_sampled_root_states_its_probability_and_children_inherit_it() -> None:
    p = pipeline(sampler="parentbased_traceidratio")
    with p.tracing.activated():
        for _ in range(2000):
            checkout()
    spans = p.exported()
    assert 2 <= len(spans) <= 100  # ~1% of 2000 traces, two spans each
    assert {round(weight_of(s.context.trace_state) or 0, 6) for s in spans} == {100.0}
    p.tracing.shutdown()


def test_settings_from_the_environment() -> None:
    assert tail_keep_settings({}).enabled and tail_keep_settings({}).slow_ms is None
    assert not tail_keep_settings({"FLUORO_TAIL_KEEP": "off"}).enabled
    assert tail_keep_settings({"FLUORO_TAIL_KEEP": "off"}, True).enabled
    tuned = tail_keep_settings(
        {"FLUORO_TAIL_SLOW_MS": "250", "FLUORO_TAIL_MAX_TRACE_SPANS": "9", "FLUORO_TAIL_MAX_SPANS": "x"}
    )
    assert (tuned.slow_ms, tuned.max_trace_spans, tuned.max_spans) == (250.0, 9, TailKeepSettings().max_spans)


def test_roots_decided_in_the_factory_agree_with_the_sdk_ratio_sampler() -> None:
    p = pipeline(sampler="traceidratio")
    sdk = TraceIdRatioBased(0.01)
    for _ in range(3000):
        span = p.tracing.spans.start("root", parent_context=context_api.Context())
        trace_id = span.get_span_context().trace_id
        expected = sdk.should_sample(None, trace_id, "root").decision is Decision.RECORD_AND_SAMPLE
        assert span.get_span_context().trace_flags.sampled == expected
    p.tracing.shutdown()


def test_spans_of_other_instrumentations_are_held_and_kept_with_their_trace(unsampled: Pipeline) -> None:
    sdk = unsampled.tracing.tracer("botocore-like")

    @tracer.traced(name="handler")
    def handler() -> None:
        with sdk.start_as_current_span("DynamoDB.UpdateItem", kind=SpanKind.CLIENT) as call:
            call.set_attribute(semconv.THROTTLE, True)  # the throttle is on the SDK's span only

    @tracer.traced(name="quiet")
    def quiet() -> None:
        with sdk.start_as_current_span("DynamoDB.GetItem", kind=SpanKind.CLIENT):
            pass

    quiet()
    handler()
    assert unsampled.reasons() == {"DynamoDB.UpdateItem": "tail:throttle", "handler": "tail:throttle"}
    with sdk.start_as_current_span("an SDK root") as root:  # a root the SDK starts: held, then dropped
        assert root.is_recording() and not root.get_span_context().trace_flags.sampled
    assert len(unsampled.exported()) == 2


def test_a_span_that_ends_after_its_kept_root_follows_its_trace() -> None:
    p = pipeline()
    root = p.tracing.spans.start("root", parent_context=context_api.Context())
    late = p.tracing.spans.start("left running", parent_context=trace_api.set_span_in_context(root))
    root.set_attribute(semconv.FAULT, True)
    root.end()
    late.end()
    assert p.reasons() == {"root": "tail:error", "left running": "tail:error"}
    p.tracing.shutdown()
