"""Fluoro's tracer: X-Ray-style tracing for serverless Python, built on OpenTelemetry.

Typical use::

    import tracer

    tracer.configure("checkout")          # OTLP/HTTP to 127.0.0.1:4318 unless OTEL_* say otherwise
    tracer.instrument_aws()               # boto3 calls become client spans

    @tracer.traced.handler
    def handler(event, context):
        tracer.annotate("customer", event["customer"])
        return charge(event)

    @tracer.traced
    def charge(event): ...

Without ``configure()`` every decorator and helper is a no-op. The AWS and HTTP client hooks,
the ASGI middleware and the trigger-event helpers are imported only when first used (the
middleware and events on first access of their names here), so ``import tracer`` adds little to
a cold start.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api

from tracer.annotations import annotate_span, put_span_metadata
from tracer.coldstart import track_imports
from tracer.decorator import traced
from tracer.propagation import extract_from, xray_header
from tracer.runtime import ACTIVE, Tracing, active, configure, flush, shutdown, stats
from tracer.settings import resolve_settings

if TYPE_CHECKING:
    from tracer.asgi import TracingMiddleware
    from tracer.events import EVENTBRIDGE_CARRIER_KEY, message_carriers
    from tracer.sdk_exporters import OtlpHttpExporter
    from tracer.xray_sampling_rules import XRayRulesSampler

# Names whose modules load on first access: a Lambda function needs neither the ASGI middleware
# nor (unless it forwards events) the carriers nor (unless configured) X-Ray's sampling rules,
# and each costs a cold start milliseconds.
_LAZY_NAMES = {
    "TracingMiddleware": "tracer.asgi",
    "EVENTBRIDGE_CARRIER_KEY": "tracer.events",
    "message_carriers": "tracer.events",
    "XRayRulesSampler": "tracer.xray_sampling_rules",
    "OtlpHttpExporter": "tracer.sdk_exporters",  # the SDK's export module comes with it
}

__all__ = [
    "EVENTBRIDGE_CARRIER_KEY",
    "OtlpHttpExporter",
    "Tracing",
    "TracingMiddleware",
    "XRayRulesSampler",
    "active",
    "annotate",
    "configure",
    "extract_from",
    "flush",
    "instrument_aws",
    "instrument_http",
    "message_carriers",
    "put_metadata",
    "resolve_settings",
    "shutdown",
    "stats",
    "traced",
    "track_imports",
    "xray_header",
]

_logger = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'tracer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def annotate(key: str, value: str | int | float | bool) -> None:
    """Add an X-Ray annotation (indexed, filterable) to the current span."""
    tracing = ACTIVE.tracing
    if tracing is None:
        return
    try:
        annotate_span(trace_api.get_current_span(), tracing.annotations, key, value)
    except Exception:
        _logger.exception("fluoro: annotate failed")


def put_metadata(key: str, value: object, namespace: str = "default") -> None:
    """Attach JSON-able metadata (not indexed; secrets redacted, size-capped) to the current span."""
    if ACTIVE.tracing is None:
        return
    try:
        put_span_metadata(trace_api.get_current_span(), key, value, namespace)
    except Exception:
        _logger.exception("fluoro: put_metadata failed")


def instrument_aws(tracing: Tracing | None = None) -> bool:
    """Trace boto3/botocore calls, with X-Ray targets, flags and async-hop context."""
    from tracer.aws import instrument_aws as instrument

    return instrument(tracing)


def instrument_http(tracing: Tracing | None = None) -> bool:
    """Trace httpx and requests calls, with the remote host as the target."""
    from tracer.http_clients import instrument_http as instrument

    return instrument(tracing)
