"""The hand-written OTLP encoder produces the same message as the stock encoder."""

from __future__ import annotations

from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from tests.conftest import Recorder
from tracer import semconv
from tracer.otlp_encoder import OtlpEncoder, varint

REMOTE_PARENT = SpanContext(0x6B0A5256B8E293D9E0487522A64239A7, 0x1122334455667788, True, TraceFlags(1))


def sdk_spans() -> list[ReadableSpan]:
    """A varied set of SDK spans from two resources and two scopes."""
    exporter = InMemorySpanExporter()
    for service in ("alpha", "beta"):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "n": 1}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for scope in ("scope.one", "scope.two"):
            otel = provider.get_tracer(scope, "1.2.3", schema_url="https://opentelemetry.io/schemas/1.21.0")
            with otel.start_as_current_span(
                "root ü",
                kind=SpanKind.SERVER,
                attributes={
                    "s": "text",
                    "b": False,
                    "i": -42,
                    "big": 2**62,
                    "f": 1.5,
                    "sl": ["a", "b"],
                    "il": [1, 2],
                    "bl": [True],
                    "fl": [0.5],
                },
                links=[Link(REMOTE_PARENT, {"why": "batch"})],
            ) as root:
                root.add_event("checkpoint", {"n": 3}, timestamp=1_700_000_000_000_000_000)
                root.set_status(Status(StatusCode.ERROR, "broken ✗"))
                with otel.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
                    child.set_status(StatusCode.OK)
            remote_parent = SpanContext(
                REMOTE_PARENT.trace_id, REMOTE_PARENT.span_id, True, TraceFlags(1), TraceState([("vendor", "v1")])
            )
            remote_ctx = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote_parent))
            otel.start_span("remote child", context=remote_ctx, kind=SpanKind.CONSUMER).end()
    return list(exporter.get_finished_spans())


def parse(body: bytes) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(body)
    return request


def sampling_of(request: ExportTraceServiceRequest) -> list[dict[str, object]]:
    """Each span's fluoro.sampling* attributes, taken out of `request` (which then matches the
    stock encoder's, which knows nothing of them)."""
    found = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                mine = [kv for kv in span.attributes if kv.key.startswith(semconv.SAMPLING)]
                found.append({kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in mine})
                for kv in mine:
                    span.attributes.remove(kv)
    return found


def test_sdk_spans_encode_to_the_stock_message() -> None:
    spans = sdk_spans()
    ours = parse(OtlpEncoder().encode(spans))
    stock = parse(stock_encode(spans).SerializeToString())
    assert sampling_of(ours) == [{semconv.SAMPLING: "head"}] * 12
    assert ours == stock
    assert sum(len(ss.spans) for rs in ours.resource_spans for ss in rs.scope_spans) == len(spans) == 12


def test_light_spans_encode_to_the_stock_message(recorder: Recorder) -> None:
    span = recorder.tracing.spans.start("light", kind=SpanKind.PRODUCER, attributes={"k": "v", "n": 7})
    span.add_event("e", {"x": 1.0})
    span.add_link(REMOTE_PARENT, {"l": True})
    span.record_exception(ValueError("bad"))
    span.end()
    spans = recorder.spans()
    ours = parse(OtlpEncoder().encode(spans))
    assert sampling_of(ours) == [{semconv.SAMPLING: "head"}]
    assert ours == parse(stock_encode(spans).SerializeToString())


def test_a_head_sampled_span_below_one_in_one_states_its_weight_and_a_tail_kept_one_its_reason() -> None:
    resource = Resource.create({"service.name": "w"})
    half = TraceState([("other", "x"), ("ot", "th:8;rv:1234")])  # kept with probability 1/2

    def span(name: str, flags: int, state: TraceState | None, attributes: dict[str, str] | None) -> ReadableSpan:
        context = SpanContext(7, len(name), False, TraceFlags(flags), state)
        return ReadableSpan(
            name=name, context=context, resource=resource, attributes=attributes, start_time=1, end_time=2
        )

    spans = [
        span("weighted", 1, half, None),
        span("whole", 1, TraceState([("ot", "th:0")]), None),
        span("tail", 0, half, {semconv.SAMPLING: "tail:error"}),
        span("unsampled, not kept by tail-keep", 0, None, None),
    ]
    assert sampling_of(parse(OtlpEncoder().encode(spans))) == [
        {semconv.SAMPLING: "head", semconv.SAMPLING_WEIGHT: 2.0},
        {semconv.SAMPLING: "head"},
        {semconv.SAMPLING: "tail:error"},
        {},
    ]


def test_encoder_caches_do_not_mix_resources_up() -> None:
    encoder = OtlpEncoder()
    spans = sdk_spans()
    first = encoder.encode(spans)
    assert encoder.encode(spans) == first  # cached resource/scope/name encodings give the same bytes
    scope = InstrumentationScope("solo")
    event = Event("e", {"a": 1}, 5)
    odd = ReadableSpan(
        name="odd",
        context=SpanContext(1, 2, False, TraceFlags(1)),
        resource=Resource.create({"service.name": "gamma"}),
        instrumentation_scope=scope,
        events=[event],
        start_time=1,
        end_time=2,
    )
    ours = parse(encoder.encode([odd]))
    assert sampling_of(ours) == [{semconv.SAMPLING: "head"}]
    assert ours == parse(stock_encode([odd]).SerializeToString())


def test_varint() -> None:
    assert varint(0) == b"\x00"
    assert varint(127) == b"\x7f"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"
