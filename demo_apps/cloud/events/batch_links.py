"""The producers a batch of queue or stream records links to: each record's trace context."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracer import extract_from, message_carriers

_CARRIERS = CompositePropagator([TraceContextTextMapPropagator(), AwsXRayPropagator()])  # what records carry


def producer_links(event: Any) -> list[Link]:
    """A link to the producer of each record of a batch event that carries a trace context."""
    links = []
    for carrier in message_carriers(event):
        context = trace_api.get_current_span(extract_from(carrier, _CARRIERS)).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    return links
