"""A span holding values OTLP cannot carry costs those values, never the batch around it: the
encoder rebuilds that one span (tracer/encodable.py), and what comes out is a request the
collector's own decoder takes whole."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from collector.normalize.otlp_proto import decode_protobuf
from demo_apps.otlp_sink import plain_value
from tests.conftest import Recorder
from tracer.encodable import MAX_DEPTH, TOO_DEEP
from tracer.otlp_encoder import OtlpEncoder, varint

RESOURCE = Resource.create({"service.name": "orders"})
NOW_NS = 1_800_000_000_000_000_000


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def span(name: object, span_id: int, **fields: Any) -> ReadableSpan:
    context = SpanContext(0x6B0A5256B8E293D9E0487522A64239A7, span_id, False, TraceFlags(1))
    return ReadableSpan(
        name=name,  # type: ignore[arg-type]
        context=context,
        resource=RESOURCE,
        start_time=NOW_NS - 1000,
        end_time=NOW_NS,
        **fields,
    )


def encoded_spans(body: bytes) -> dict[str, SpanMessage]:
    request = ExportTraceServiceRequest.FromString(body)
    return {s.name: s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}


def attributes_of(message: Any) -> dict[str, object]:
    return {kv.key: plain_value(kv.value) for kv in message.attributes if not kv.key.startswith("fluoro.sampling")}


def depth_of(value: object) -> int:
    depth = 0
    while isinstance(value, (list, dict)) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    assert value == TOO_DEEP
    return depth


def test_a_span_with_values_otlp_cannot_carry_costs_those_values_and_not_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cyclic: list[Any] = ["x"]
    cyclic.insert(0, cyclic)
    deep: dict[str, Any] = {}
    for _ in range(2000):
        deep = {"a": deep}
    hostile = span(
        "hostile",
        9,
        attributes={
            "huge": 2**70,
            "huge negative": -(2**70),
            "fine": 7,
            "past str's digits": 10**5000,
            "cyclic": cyclic,
            "deep": deep,
            "nested odd key": {1: "one", "ok": Unprintable()},
            7: "a key that is a number",
            "": "an empty key",
        },
        events=[Event(Unprintable(), {"n": 2**64}, -5)],  # type: ignore[arg-type]
    )
    good = [span(f"good {n}", n, attributes={"n": n}) for n in range(1, 4)]
    encoder = OtlpEncoder()
    with caplog.at_level(logging.WARNING):
        body = encoder.encode([*good[:2], hostile, good[2]])
        encoder.encode([hostile])  # again within the minute: counted, not logged again

    spans = encoded_spans(body)
    assert sorted(spans) == ["good 1", "good 2", "good 3", "hostile"]
    assert all(attributes_of(spans[f"good {n}"]) == {"n": n} for n in (1, 2, 3))
    kept = attributes_of(spans["hostile"])
    assert kept["huge"] == str(2**70) and kept["huge negative"] == str(-(2**70)) and kept["fine"] == 7
    assert kept["past str's digits"] == "int"
    assert depth_of(kept["cyclic"]) == MAX_DEPTH and depth_of(kept["deep"]) == MAX_DEPTH
    assert kept["nested odd key"] == {"1": "one", "ok": "Unprintable"}
    assert kept["7"] == "a key that is a number" and "" not in kept
    (event,) = spans["hostile"].events
    assert (event.name, event.time_unix_nano, attributes_of(event)) == ("Unprintable", 0, {"n": str(2**64)})
    assert (encoder.rebuilt_spans, encoder.unencodable_spans) == (2, 0)
    assert len([r for r in caplog.records if "OTLP cannot carry" in r.getMessage()]) == 1
    assert decode_protobuf(body).spans.num_rows == 4  # the collector takes the request whole


def test_a_span_nothing_can_rebuild_is_left_out_alone() -> None:
    class Hopeless(ReadableSpan):
        @property
        def _context(self) -> SpanContext:
            raise RuntimeError("no context")

        @_context.setter
        def _context(self, value: object) -> None:
            pass

    hopeless = Hopeless(name="hopeless", resource=RESOURCE, start_time=1, end_time=2)
    encoder = OtlpEncoder()
    body = encoder.encode([span("good", 1), hopeless, span("also good", 2)])
    assert sorted(encoded_spans(body)) == ["also good", "good"]
    assert (encoder.rebuilt_spans, encoder.unencodable_spans) == (0, 1)


def test_light_spans_take_any_int_their_api_accepts(recorder: Recorder) -> None:
    light = recorder.tracing.spans.start("light", attributes={"small": 1})
    light.set_attribute("huge", 2**64)
    light.set_attribute("edge", -(2**63))
    light.end()
    (message,) = encoded_spans(OtlpEncoder().encode(recorder.spans())).values()
    assert attributes_of(message) == {"small": 1, "huge": str(2**64), "edge": -(2**63)}


def test_varint_refuses_what_int64_cannot_hold() -> None:
    assert varint(2**63 - 1) == b"\xff" * 8 + b"\x7f"
    assert varint(-(2**63)) == b"\x80" * 9 + b"\x01"
    for outside in (2**63, 2**70, -(2**63) - 1):
        with pytest.raises(OverflowError):
            varint(outside)
