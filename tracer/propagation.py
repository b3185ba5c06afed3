"""Trace-context propagation: W3C tracecontext + baggage + the X-Ray header, and X-Ray ids.

Extraction runs the propagators in order and a later one wins. The default order
(tracecontext, baggage, xray) lets the X-Ray header win when both arrive, because AWS
services (API Gateway, Lambda, SQS) rewrite it hop by hop and only it survives them; a W3C
``traceparent`` from a client that AWS did not touch is used when no X-Ray header is present.
Injection writes every format, so either kind of downstream joins the trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagate import get_global_textmap
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_logger = logging.getLogger(__name__)

_KNOWN: dict[str, type[TextMapPropagator]] = {
    "tracecontext": TraceContextTextMapPropagator,
    "baggage": W3CBaggagePropagator,
    "xray": AwsXRayPropagator,
}


def build_propagator(names: tuple[str, ...]) -> TextMapPropagator:
    """The composite propagator OTEL_PROPAGATORS names (unknown names are skipped with a warning)."""
    chosen: list[TextMapPropagator] = []
    for name in names:
        if name == "none":
            continue
        factory = _KNOWN.get(name)
        if factory is None:
            _logger.warning("fluoro: unknown propagator %r ignored", name)
            continue
        chosen.append(factory())
    return CompositePropagator(chosen)


def xray_trace_id(trace_id: int) -> str:
    """An OTel trace id as X-Ray writes it: ``1-<8 hex epoch>-<24 hex>``."""
    hex_id = f"{trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def xray_header(context: SpanContext) -> str:
    """The X-Amzn-Trace-Id value naming `context` as the parent."""
    sampled = "1" if context.trace_flags.sampled else "0"
    return f"Root={xray_trace_id(context.trace_id)};Parent={context.span_id:016x};Sampled={sampled}"


# W3C Baggage's limit on the whole header (OpenTelemetry's propagator ignores a longer one, but
# logs it in full first: a client's 1 MB header would become a 1 MB log line on every request).
MAX_BAGGAGE_BYTES = 8192


def _propagatable(value: object) -> bool:
    """A string the propagators can take: they encode some as UTF-8 and raise on a lone surrogate
    (which JSON's escapes can carry in an event, though no HTTP header can)."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def extract_from(carrier: Mapping[str, str], propagator: TextMapPropagator | None = None) -> Context:
    """The context a case-insensitive string mapping (headers, message attributes) carries."""
    lowered = {str(k).lower(): v for k, v in carrier.items() if _propagatable(v)}
    baggage = lowered.get("baggage")
    if baggage is not None and len(baggage) > MAX_BAGGAGE_BYTES // 4 and len(baggage.encode()) > MAX_BAGGAGE_BYTES:
        del lowered["baggage"]  # ignored as the propagator would, without echoing it into the log
        _logger.debug("fluoro: a baggage header of %d characters ignored (W3C allows 8192 bytes)", len(baggage))
    # The X-Ray propagator reads "X-Amzn-Trace-Id" verbatim; give both spellings.
    if "x-amzn-trace-id" in lowered:
        lowered["X-Amzn-Trace-Id"] = lowered["x-amzn-trace-id"]
    return (propagator or get_global_textmap()).extract(lowered)
