"""Trace ids are X-Ray's (the epoch second first), from the factory and the SDK's provider alike,
and span contexts built without the API's checks equal the API's own."""

from __future__ import annotations

import time

from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, TraceFlags, TraceState

from tests.conftest import make_recorder
from tracer.propagation import xray_trace_id
from tracer.spans import new_span_context


def test_roots_of_both_paths_carry_the_epoch_second_x_ray_requires() -> None:
    tracing, _ = make_recorder()
    before_s = int(time.time())
    ours = tracing.spans.start("ours")
    theirs = tracing.tracer().start_span("theirs")
    after_s = int(time.time())
    for span in (ours, theirs):
        context = span.get_span_context()
        assert before_s <= context.trace_id >> 96 <= after_s
        assert context.span_id != 0 and context.is_valid
        assert int(xray_trace_id(context.trace_id).split("-")[1], 16) == context.trace_id >> 96
        span.end()
    ids = {tracing.spans.start("again").get_span_context().trace_id for _ in range(1000)}
    assert len(ids) == 1000
    tracing.shutdown()


def test_an_unchecked_span_context_is_the_apis_own() -> None:
    state = TraceState([("fluoro", "t:1")])
    for trace_id, span_id, flags, trace_state in (
        (1, 2, TraceFlags(1), None),
        (2**128 - 1, 2**64 - 1, TraceFlags(0), state),
    ):
        built = new_span_context(trace_id, span_id, flags, trace_state)
        api = SpanContext(trace_id, span_id, False, flags, trace_state)
        assert built == api and type(built) is SpanContext
        assert (built.trace_id, built.span_id, built.is_remote, built.trace_flags, built.is_valid) == (
            trace_id,
            span_id,
            False,
            flags,
            True,
        )
        assert built.trace_state == (trace_state if trace_state is not None else DEFAULT_TRACE_STATE)
