"""The fast spans under OpenTelemetry's span limits, as the SDK's own spans take them: what they
keep, and what they count as dropped for OTLP's dropped_*_count fields."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, TraceFlags

import tracer
from tests.recorded import attributes_of
from tracer import semconv
from tracer.encodable import TOO_DEEP
from tracer.otlp_encoder import OtlpEncoder
from tracer.runtime import Tracing
from tracer.settings import Settings


class Boom(Exception):
    pass


def remote(span_id: int) -> SpanContext:
    return SpanContext(0xA, span_id, is_remote=True, trace_flags=TraceFlags(1))


def only_span(body: bytes) -> SpanMessage:
    request = ExportTraceServiceRequest.FromString(body)
    spans: list[SpanMessage] = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 1
    return spans[0]


def dropped_counts(span: SpanMessage) -> tuple[int, ...]:
    return (
        span.dropped_attributes_count,
        span.dropped_events_count,
        span.dropped_links_count,
        *(event.dropped_attributes_count for event in span.events),
        *(link.dropped_attributes_count for link in span.links),
    )


def test_an_attribute_length_limit_is_honoured_as_the_sdk_honours_it() -> None:
    """OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: strings (and strings in sequences) on the fast spans,
    their events and their SDK siblings keep at most that many characters; other values stay."""
    exporter = InMemorySpanExporter()
    tracing = Tracing(Settings(attribute_value_length=5), exporter=exporter, batch=False)

    @tracer.traced(name="limited")
    def limited() -> None:
        span = trace_api.get_current_span()
        span.set_attribute("text", "abcdefgh")
        span.set_attribute("texts", ["abcdefgh", "xy"])
        span.set_attribute("number", 1234567890)
        span.add_event("note", {"detail": "abcdefgh"})
        tracer.annotate("customer", "c-123456")
        raise Boom("a long message")

    with tracing.activated(), pytest.raises(Boom):
        limited()
    tracing.flush()
    (span,) = exporter.get_finished_spans()
    attributes = attributes_of(span)
    assert (attributes["text"], attributes["texts"], attributes["number"]) == ("abcde", ("abcde", "xy"), 1234567890)
    assert attributes[semconv.ANNOTATION_PREFIX + "customer"] == "c-123"
    note, error = span.events
    assert attributes_of(note)["detail"] == "abcde"
    assert attributes_of(error)["exception.message"] == "a lon"
    tracing.shutdown()


def test_span_count_limits_are_honoured_as_the_sdk_honours_them() -> None:
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_SPAN_EVENT_COUNT_LIMIT and OTEL_SPAN_LINK_COUNT_LIMIT."""
    exporter = InMemorySpanExporter()
    settings = Settings(attribute_count_limit=2, event_count_limit=1, link_count_limit=1)
    tracing = Tracing(settings, exporter=exporter, batch=False)
    links = [Link(SpanContext(0xA, n, is_remote=True, trace_flags=TraceFlags(1))) for n in (1, 2)]
    span = tracing.spans.start("counted", attributes={"a": 1, "b": 2, "c": 3}, links=links)
    span.set_attribute("d", 4)  # a third key: refused
    span.set_attribute("a", 10)  # a kept key: still updated
    span.add_event("first")
    span.add_event("second")
    span.end()
    tracing.flush()
    (ended,) = exporter.get_finished_spans()
    assert attributes_of(ended) == {"a": 10, "b": 2}
    assert [event.name for event in ended.events] == ["first"]
    assert [link.context.span_id for link in ended.links] == [1]
    tracing.shutdown()


def limited_operations(span: Any) -> None:
    span.set_attribute("d", 4)
    span.add_event("first", {"q": 2, "p": "abcdef"})  # the newest attribute stays, as in the SDK
    span.add_event("second")
    span.add_link(remote(3), {"z": 1})
    span.end()


def test_event_and_link_limits_and_what_was_dropped_reach_otlp_as_the_sdks_do() -> None:
    """OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT and OTEL_LINK_ATTRIBUTE_COUNT_LIMIT, the length limit on
    events' and links' values, and the dropped counts: the same as the SDK's span reports."""
    exporter = InMemorySpanExporter()
    settings = Settings(
        attribute_value_length=3,
        attribute_count_limit=2,
        event_count_limit=1,
        link_count_limit=1,
        event_attribute_count_limit=1,
        link_attribute_count_limit=1,
    )
    tracing = Tracing(settings, exporter=exporter, batch=False)
    links = [Link(remote(1), {"y": 1, "x": "long"}), Link(remote(2))]
    limited_operations(tracing.spans.start("limited", attributes={"a": 1, "b": 2, "c": 3}, links=links))
    tracing.flush()
    ours = only_span(OtlpEncoder().encode(exporter.get_finished_spans()))
    tracing.shutdown()

    sdk_limits = SpanLimits(
        max_attributes=2,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
        max_attribute_length=3,
    )
    provider = TracerProvider(span_limits=sdk_limits)
    sdk_exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sdk_exporter))
    sdk_links = [Link(remote(1), {"y": 1, "x": "long"}), Link(remote(2))]
    sdk_span = provider.get_tracer("t").start_span("limited", attributes={"a": 1, "b": 2, "c": 3}, links=sdk_links)
    limited_operations(sdk_span)
    stock = only_span(stock_encode(sdk_exporter.get_finished_spans()).SerializeToString())

    # The span's own counts as the SDK's; which event and link survive differs (the SDK's evict
    # the oldest, these keep the first, as the specification says), so theirs are checked alone.
    assert dropped_counts(ours)[:3] == dropped_counts(stock)[:3] == (2, 1, 2)
    assert dropped_counts(ours)[3:] == (1, 1)
    assert [(kv.key, kv.value.string_value) for kv in ours.events[0].attributes] == [("p", "abc")]
    assert [(kv.key, kv.value.string_value) for kv in ours.links[0].attributes] == [("x", "lon")]


def test_the_default_limits_count_what_they_turn_away(recorder: Any) -> None:
    span = recorder.tracing.spans.start("crowded", attributes={f"k{n}": n for n in range(128)})
    for n in range(130):
        span.set_attribute(f"more{n}", n)
        span.add_event(f"e{n}")
        span.add_link(remote(n + 1))
    span.add_event("many attributes", {f"a{n}": n for n in range(200)})  # past the 128 events: dropped
    span.end()
    encoded = only_span(OtlpEncoder().encode(recorder.spans()))
    assert (len(encoded.attributes), len(encoded.events), len(encoded.links)) == (129, 128, 128)  # + sampling
    assert dropped_counts(encoded)[:3] == (130, 3, 2)


def test_an_event_attribute_that_holds_itself_neither_raises_nor_costs_the_event(recorder: Any) -> None:
    loop: list[Any] = []
    loop.append(loop)
    span = recorder.tracing.spans.start("looped")
    span.add_event("loop", {"self": loop, "fine": 1}, timestamp=5)  # the API must not raise
    span.add_link(remote(1), {"self": loop})
    span.end()
    (event,) = only_span(OtlpEncoder().encode(recorder.spans())).events
    assert event.name == "loop" and event.attributes[1].value.int_value == 1
    value = event.attributes[0].value
    while value.HasField("array_value"):
        value = value.array_value.values[0]
    assert value.string_value == TOO_DEEP


def test_a_self_holding_event_attribute_still_keeps_the_length_limit() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(Settings(attribute_value_length=3), exporter=exporter, batch=False)
    loop: list[Any] = []
    loop.append(loop)
    span = tracing.spans.start("looped")
    span.add_event("loop", {"self": loop, "text": "abcdef"})
    span.end()
    tracing.flush()
    (event,) = exporter.get_finished_spans()[0].events
    tracing.shutdown()
    assert event.attributes is not None and event.attributes["text"] == "abc"
