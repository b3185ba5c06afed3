"""@traced on every kind of callable, with the error taxonomy and the unsampled fast path."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
from collections.abc import Callable, Generator, Iterator

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import tracer
import tracer.current_context as current_context_module
from tests.conftest import Recorder, make_recorder
from tests.recorded import attributes_of
from tracer import semconv
from tracer.lightspan import MAX_EXCEPTION_MESSAGE_CHARS, MAX_STACKTRACE_CHARS
from tracer.scope import close_span, open_span


class Boom(Exception):
    pass


def test_plain_function_records_one_span_and_keeps_metadata(recorder: Recorder) -> None:
    @tracer.traced
    def add(a: int, b: int = 2) -> int:
        """Adds."""
        return a + b

    assert add(1) == 3
    assert add.__name__ == "add" and add.__doc__ == "Adds."
    assert list(inspect.signature(add).parameters) == ["a", "b"]
    span = recorder.by_name("test_plain_function_records_one_span_and_keeps_metadata.<locals>.add")
    assert span.kind is SpanKind.INTERNAL
    assert span.end_time is not None and span.start_time is not None and span.end_time >= span.start_time


def test_nested_calls_form_parent_child_links(recorder: Recorder) -> None:
    @tracer.traced(name="inner")
    def inner() -> None:
        pass

    @tracer.traced(name="outer")
    def outer() -> None:
        inner()
        inner()

    outer()
    outer_span = recorder.by_name("outer")
    inners = [s for s in recorder.spans() if s.name == "inner"]
    assert len(inners) == 2
    for span in inners:
        assert span.parent is not None and span.parent.span_id == outer_span.context.span_id
        assert span.context.trace_id == outer_span.context.trace_id
    assert outer_span.parent is None


def test_methods_and_options(recorder: Recorder) -> None:
    class Account:
        @tracer.traced(name="Account.debit", kind=SpanKind.CLIENT, capture_response=True, annotations={"tier": "gold"})
        def debit(self, amount: int) -> dict[str, int]:
            return {"balance": 100 - amount, "password": 1}

    assert Account().debit(30) == {"balance": 70, "password": 1}
    span = recorder.by_name("Account.debit")
    assert span.kind is SpanKind.CLIENT
    assert attributes_of(span)[semconv.ANNOTATION_PREFIX + "tier"] == "gold"
    assert json.loads(str(attributes_of(span)[semconv.RESPONSE])) == {"balance": 70, "password": "[REDACTED]"}


def test_exception_is_recorded_as_fault_and_reraised_unchanged(recorder: Recorder) -> None:
    error = Boom("no funds")

    @tracer.traced(name="fails")
    def fails() -> None:
        raise error

    with pytest.raises(Boom) as caught:
        fails()
    assert caught.value is error
    span = recorder.by_name("fails")
    assert attributes_of(span)[semconv.FAULT] is True
    assert semconv.THROTTLE not in attributes_of(span)
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"
    assert attributes_of(event)["exception.type"] == "Boom"
    assert "no funds" in str(attributes_of(event)["exception.stacktrace"])


def test_an_outsize_exception_message_is_kept_bounded(recorder: Recorder) -> None:
    """A message carrying a whole payload: the span keeps its start, the trace its end."""

    @tracer.traced(name="verbose")
    def verbose() -> None:
        raise Boom("bad input " + "x" * 1_000_000 + " end")

    with pytest.raises(Boom):
        verbose()
    span = recorder.by_name("verbose")
    (event,) = span.events
    attributes = attributes_of(event)
    assert str(attributes["exception.message"]).startswith("bad input ")
    assert len(str(attributes["exception.message"])) == MAX_EXCEPTION_MESSAGE_CHARS
    assert str(attributes["exception.stacktrace"]).endswith(" end\n")
    assert len(str(attributes["exception.stacktrace"])) == MAX_STACKTRACE_CHARS
    assert span.status.description is not None and len(span.status.description) == MAX_EXCEPTION_MESSAGE_CHARS


def test_capture_error_false_keeps_the_fault_but_not_the_details(recorder: Recorder) -> None:
    @tracer.traced(name="quiet", capture_error=False)
    def quiet() -> None:
        raise Boom("secret detail")

    with pytest.raises(Boom):
        quiet()
    span = recorder.by_name("quiet")
    assert attributes_of(span)[semconv.FAULT] is True
    assert span.events == ()


def test_throttling_exception_is_fault_and_throttle(recorder: Recorder) -> None:
    class ThrottlingException(Exception):
        pass

    @tracer.traced(name="throttled")
    def throttled() -> None:
        raise ThrottlingException("Rate exceeded")

    with pytest.raises(ThrottlingException):
        throttled()
    span = recorder.by_name("throttled")
    assert attributes_of(span)[semconv.THROTTLE] is True
    assert attributes_of(span)[semconv.FAULT] is True


def test_coroutine(recorder: Recorder) -> None:
    @tracer.traced(name="child")
    async def child() -> int:
        await asyncio.sleep(0)
        return 1

    @tracer.traced(name="parent")
    async def parent() -> int:
        return await child() + await child()

    assert inspect.iscoroutinefunction(parent)
    assert asyncio.run(parent()) == 2
    parent_span = recorder.by_name("parent")
    children = [s for s in recorder.spans() if s.name == "child"]
    assert len(children) == 2
    assert all(c.parent is not None and c.parent.span_id == parent_span.context.span_id for c in children)


def test_generator_span_covers_the_iteration_and_is_current_only_inside(recorder: Recorder) -> None:
    seen_by_body: list[int] = []

    @tracer.traced(name="numbers")
    def numbers(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            seen_by_body.append(trace_api.get_current_span().get_span_context().span_id)
            sent = yield i
            if sent:
                yield sent * 10
        return "done"

    assert inspect.isgeneratorfunction(numbers)
    gen = numbers(3)
    assert next(gen) == 0
    # Between items the consumer's context is its own.
    assert not trace_api.get_current_span().get_span_context().is_valid
    assert gen.send(5) == 50
    assert list(gen) == [1, 2]
    span = recorder.by_name("numbers")
    assert set(seen_by_body) == {span.context.span_id}
    assert span.end_time is not None


def test_generator_closed_early_still_ends_its_span(recorder: Recorder) -> None:
    @tracer.traced(name="endless")
    def endless() -> Generator[int, None, None]:
        i = 0
        while True:
            yield i
            i += 1

    gen = endless()
    assert next(gen) == 0
    gen.close()
    span = recorder.by_name("endless")
    assert semconv.FAULT not in attributes_of(span)


def test_generator_exception_is_a_fault(recorder: Recorder) -> None:
    @tracer.traced(name="bad_gen")
    def bad_gen() -> Iterator[int]:
        yield 1
        raise Boom("mid-stream")

    with pytest.raises(Boom):
        list(bad_gen())
    assert attributes_of(recorder.by_name("bad_gen"))[semconv.FAULT] is True


def test_async_generator(recorder: Recorder) -> None:
    @tracer.traced(name="ticks")
    async def ticks(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def consume() -> list[int]:
        return [i async for i in ticks(3)]

    assert inspect.isasyncgenfunction(ticks)
    assert asyncio.run(consume()) == [0, 1, 2]
    assert recorder.by_name("ticks").end_time is not None


def test_unsampled_parent_creates_no_span_and_changes_no_context(recorder: Recorder) -> None:
    seen: list[trace_api.Span] = []

    @tracer.traced(name="quiet")
    def quiet() -> int:
        seen.append(trace_api.get_current_span())
        return 7

    parent = trace_api.NonRecordingSpan(
        trace_api.SpanContext(0x1234, 0x5678, False, trace_api.TraceFlags(trace_api.TraceFlags.DEFAULT))
    )
    token = context_api.attach(trace_api.set_span_in_context(parent))
    try:
        assert quiet() == 7
    finally:
        context_api.detach(token)
    assert seen == [parent]
    assert recorder.spans() == []


def in_context_of(span: trace_api.Span, fn: Callable[[], object]) -> object:
    token = context_api.attach(trace_api.set_span_in_context(span))
    try:
        return fn()
    finally:
        context_api.detach(token)


def unsampled(span_id: int, *, remote: bool = False) -> trace_api.NonRecordingSpan:
    flags = trace_api.TraceFlags(trace_api.TraceFlags.DEFAULT)
    return trace_api.NonRecordingSpan(trace_api.SpanContext(0x1234, span_id, remote, flags))


def test_the_parent_skipped_last_is_skipped_by_identity_and_only_by_its_own_pipeline(recorder: Recorder) -> None:
    @tracer.traced(name="work")
    def work() -> int:
        return 1

    @tracer.traced(name="failing")
    def failing() -> None:
        raise Boom("tail-keep keeps this")

    local = unsampled(0x1)
    assert [in_context_of(local, work) for _ in range(3)] == [1, 1, 1]
    assert recorder.tracing.spans.skipped_parent is local and recorder.spans() == []
    sampled = trace_api.NonRecordingSpan(
        trace_api.SpanContext(0x1234, 0x2, False, trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED))
    )
    in_context_of(sampled, work)
    with pytest.raises(Boom):
        in_context_of(unsampled(0x3, remote=True), failing)  # a remote unsampled parent: tail-kept
    assert [s.name for s in recorder.spans()] == ["work", "failing"]
    assert attributes_of(recorder.by_name("failing"))[semconv.SAMPLING] == "tail:error"
    other, exporter = make_recorder(sampler="always_on")  # not parent-based: records under `local`
    with other.activated():
        in_context_of(local, work)
    other.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["work"]


def test_another_runtime_context_is_read_through_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    class OtherRuntimeContext:
        _current_context = None

    monkeypatch.setattr(context_api, "_RUNTIME_CONTEXT", OtherRuntimeContext())
    assert current_context_module._current_context_getter() is context_api.get_current


def test_without_configure_everything_is_a_no_op() -> None:
    assert tracer.active() is None

    @tracer.traced
    def plain(x: int) -> int:
        tracer.annotate("k", "v")
        tracer.put_metadata("m", {"a": 1})
        return x * 2

    assert plain(4) == 8
    assert tracer.flush() is True


class ExplodingProcessorError(RuntimeError):
    pass


def test_telemetry_failures_never_reach_user_code(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(span: ReadableSpan) -> None:
        raise ExplodingProcessorError("exporter is broken")

    monkeypatch.setattr(recorder.tracing.init_buffer, "on_end", explode)
    monkeypatch.setattr(recorder.tracing.spans, "processor", recorder.tracing.init_buffer)

    @tracer.traced(name="survives")
    def survives() -> str:
        return "ok"

    def broken_start(*args: object, **kwargs: object) -> None:
        raise ExplodingProcessorError("cannot start")

    assert survives() == "ok"
    monkeypatch.setattr(recorder.tracing.spans, "start_under", broken_start)
    assert survives() == "ok"
    with pytest.raises(Boom):
        tracer.traced(name="still raises")(lambda: (_ for _ in ()).throw(Boom("user")))()


def test_a_span_closed_in_another_context_still_ends(recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    opened = open_span(recorder.tracing, "crossing")
    assert opened is not None
    with caplog.at_level(logging.ERROR):
        contextvars.copy_context().run(close_span, opened)  # its token belongs to this context, not that one
    context_api.detach(opened.token)  # type: ignore[arg-type]
    assert [s.name for s in recorder.spans()] == ["crossing"]
    assert "Failed to detach context" in caplog.text
