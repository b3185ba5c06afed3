"""Outgoing HTTP client spans (httpx, requests) with X-Ray's notions.

opentelemetry-instrumentation-httpx and -requests make the CLIENT spans and inject the
global propagator's headers (``configure()`` sets it to W3C + X-Ray). The hooks here add the
remote host as the span's target, so the service map can draw an inferred node for an
uninstrumented host, and error/fault/throttle from the status code.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.trace import SpanKind

from tracer import semconv
from tracer.runtime import ACTIVE, Tracing
from tracer.taxonomy import mark_http_status

_logger = logging.getLogger(__name__)
REMOTE_TARGET = "remote"


def _set_target(span: trace_api.Span, url: object) -> None:
    netloc = urlsplit(str(url)).netloc.rpartition("@")[2]
    if netloc and span.is_recording():
        span.set_attribute(semconv.TARGET_TYPE, REMOTE_TARGET)
        span.set_attribute(semconv.TARGET_NAME, netloc)


def _httpx_request_hook(span: trace_api.Span, request: Any) -> None:
    try:
        _set_target(span, request.url if hasattr(request, "url") else request[1])
    except Exception:
        _logger.exception("fluoro: httpx request hook failed")


def _httpx_response_hook(span: trace_api.Span, request: Any, response: Any) -> None:
    try:
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and span.is_recording():
            mark_http_status(span, status, SpanKind.CLIENT)
    except Exception:
        _logger.exception("fluoro: httpx response hook failed")


async def _httpx_async_request_hook(span: trace_api.Span, request: Any) -> None:
    _httpx_request_hook(span, request)


async def _httpx_async_response_hook(span: trace_api.Span, request: Any, response: Any) -> None:
    _httpx_response_hook(span, request, response)


def _requests_request_hook(span: trace_api.Span, request: Any) -> None:
    try:
        _set_target(span, getattr(request, "url", ""))
    except Exception:
        _logger.exception("fluoro: requests request hook failed")


def _requests_response_hook(span: trace_api.Span, request: Any, response: Any) -> None:
    _httpx_response_hook(span, request, response)


def instrument_http(tracing: Tracing | None = None) -> bool:
    """Trace httpx and requests calls through `tracing` (default: the active pipeline)."""
    tracing = tracing or ACTIVE.tracing
    if tracing is None:
        _logger.warning("fluoro: instrument_http() called before configure(); nothing to do")
        return False
    uninstrument_http()
    HTTPXClientInstrumentor().instrument(
        tracer_provider=tracing.provider,
        request_hook=_httpx_request_hook,
        response_hook=_httpx_response_hook,
        async_request_hook=_httpx_async_request_hook,
        async_response_hook=_httpx_async_response_hook,
    )
    RequestsInstrumentor().instrument(
        tracer_provider=tracing.provider,
        request_hook=_requests_request_hook,
        response_hook=_requests_response_hook,
    )
    return True


def uninstrument_http() -> None:
    """Undo instrument_http()."""
    for instrumentor in (HTTPXClientInstrumentor(), RequestsInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
