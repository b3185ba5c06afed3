"""W3C and X-Ray propagation, and the X-Ray id formats."""

from __future__ import annotations

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanContext, TraceFlags

from tracer.propagation import build_propagator, extract_from, xray_header, xray_trace_id

PROPAGATOR = build_propagator(("tracecontext", "baggage", "xray"))


def parent_of(carrier: dict[str, str]) -> SpanContext:
    return trace_api.get_current_span(extract_from(carrier, PROPAGATOR)).get_span_context()


def test_xray_formats() -> None:
    context = SpanContext(0x5759E988BD862E3FE1BE46A994272793, 0x53995C3F42CD8AD8, False, TraceFlags(1))
    assert xray_trace_id(context.trace_id) == "1-5759e988-bd862e3fe1be46a994272793"
    assert xray_header(context) == "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_extracts_either_header_in_any_case() -> None:
    w3c = parent_of({"TraceParent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    assert (w3c.trace_id, w3c.span_id, w3c.is_remote) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True)
    xray = parent_of({"x-amzn-trace-id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"})
    assert xray.trace_id == 0x5759E988BD862E3FE1BE46A994272793 and xray.trace_flags.sampled


def test_xray_header_wins_when_both_arrive() -> None:
    both = parent_of(
        {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        }
    )
    assert both.trace_id == 0x5759E988BD862E3FE1BE46A994272793
    assert not both.trace_flags.sampled


def test_garbage_headers_give_no_parent() -> None:
    assert not parent_of({"traceparent": "garbage", "x-amzn-trace-id": "Root=nope"}).is_valid
    assert not parent_of({}).is_valid


def test_unknown_propagator_names_are_skipped() -> None:
    propagator = build_propagator(("tracecontext", "b3-not-installed", "none"))
    assert propagator.fields == {"traceparent", "tracestate"}


def test_a_value_no_header_could_carry_is_skipped_not_raised() -> None:
    """JSON's escapes can put a lone surrogate in an event's carrier (a Kinesis record, say);
    the baggage propagator would raise encoding it. The rest of the carrier still counts."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for baggage in ("k=\ud800", "k=\ud800" + "v" * 10_000):
        parent = parent_of({"baggage": baggage, "traceparent": traceparent, "x-note": "é"})
        assert f"{parent.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
