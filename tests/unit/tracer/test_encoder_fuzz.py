"""Whatever values user code puts on a span, the encoder's request parses, keeps every span,
and is taken whole by the collector's own decoder: a property test over values of every kind
Python code can hand OpenTelemetry's API (integers of any size, NaN, lone surrogates, bytes,
nesting, keys that are not text, objects whose ``str()`` raises)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from collector.normalize.otlp_proto import decode_protobuf
from tracer.otlp_encoder import OtlpEncoder

RESOURCE = Resource.create({"service.name": "fuzzed"})
NOW_NS = 1_800_000_000_000_000_000


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")

    __repr__ = __str__


scalars = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),  # lone surrogates included: the encoder replaces them
    st.binary(max_size=16),
    st.booleans(),
    st.none(),
    st.builds(Unprintable),
)
keys = st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.booleans(), st.builds(Unprintable))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
attribute_maps = st.dictionaries(keys, values, max_size=6)


def span(name: str, span_id: int, attributes: dict[Any, Any], events: list[Event]) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=SpanContext(0x6B0A5256B8E293D9E0487522A64239A7, span_id, False, TraceFlags(1)),
        resource=RESOURCE,
        attributes=attributes,
        events=events,
        start_time=NOW_NS - 1000,
        end_time=NOW_NS,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attributes=attribute_maps, event_attributes=attribute_maps, event_name=st.one_of(st.text(), st.integers()))
def test_any_values_cost_no_span_of_the_batch(
    attributes: dict[Any, Any], event_attributes: dict[Any, Any], event_name: Any
) -> None:
    fuzzed = span("fuzzed", 3, attributes, [Event(event_name, event_attributes, NOW_NS - 500)])
    batch = [span("before", 1, {"n": 1}, []), fuzzed, span("after", 2, {"n": 2}, [])]
    body = OtlpEncoder().encode(batch)

    request = ExportTraceServiceRequest.FromString(body)
    names = [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert names == ["before", "fuzzed", "after"]
    decoded = decode_protobuf(body)
    assert (decoded.spans.num_rows, decoded.rejected) == (3, 0), decoded.rejection_reason
