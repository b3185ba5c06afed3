"""Outgoing HTTP client spans (httpx, requests) with X-Ray's notions.

opentelemetry-instrumentation-httpx and -requests make the CLIENT spans and inject the
global propagator's headers (``configure()`` sets it to W3C + X-Ray). The hooks here add the
remote host as the span's target, so the service map can draw an inferred node for an
uninstrumented host, and error/fault/throttle from the status code.

The target is named as X-Ray names a remote node: by its host, never its port (a local
service's ephemeral port would make a new node every run). A name for an address comes from
``OTEL_INSTRUMENTATION_COMMON_PEER_SERVICE_MAPPING`` (``host[:port]=name,...``, the
OpenTelemetry Java agent's setting), recorded as ``peer.service`` too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
PEER_SERVICE_MAPPING_ENV = semconv.PEER_SERVICE_MAPPING_ENV


def peer_service_mapping(setting: str) -> dict[str, str]:
    """``host[:port]=name`` pairs, comma-separated; malformed pairs are skipped with a warning."""
    mapping = {}
    for pair in filter(None, (part.strip() for part in setting.split(","))):
        address, _, name = pair.partition("=")
        if not address.strip() or not name.strip():
            _logger.warning("fluoro: %s: %r is not host[:port]=name; skipped", PEER_SERVICE_MAPPING_ENV, pair)
            continue
        mapping[address.strip().lower()] = name.strip()
    return mapping


def remote_name(url: object, peer_services: Mapping[str, str]) -> tuple[str, str | None]:
    """(the node's name, its peer.service if the mapping names it) for a request's URL; ("", None) without a host."""
    parts = urlsplit(str(url))
    host = (parts.hostname or "").lower()
    if not host:
        return "", None
    try:
        port = parts.port
    except ValueError:
        port = None
    named = (port is not None and peer_services.get(f"{host}:{port}")) or peer_services.get(host)
    return (named, named) if named else (host, None)


class _Hooks:
    """The instrumentors' request and response hooks, naming targets by one peer-service mapping."""

    def __init__(self, peer_services: Mapping[str, str]) -> None:
        self.peer_services = dict(peer_services)

    def set_target(self, span: trace_api.Span, url: object) -> None:
        if not span.is_recording():
            return
        name, peer = remote_name(url, self.peer_services)
        if name:
            span.set_attribute(semconv.TARGET_TYPE, REMOTE_TARGET)
            span.set_attribute(semconv.TARGET_NAME, name)
        if peer:
            span.set_attribute(semconv.PEER_SERVICE, peer)

    def httpx_request(self, span: trace_api.Span, request: Any) -> None:
        try:
            self.set_target(span, request.url if hasattr(request, "url") else request[1])
        except Exception:
            _logger.exception("fluoro: httpx request hook failed")

    def response(self, span: trace_api.Span, request: Any, response: Any) -> None:
        try:
            status = getattr(response, "status_code", None)
            if isinstance(status, int) and span.is_recording():
                mark_http_status(span, status, SpanKind.CLIENT)
        except Exception:
            _logger.exception("fluoro: http response hook failed")

    async def httpx_async_request(self, span: trace_api.Span, request: Any) -> None:
        self.httpx_request(span, request)

    async def httpx_async_response(self, span: trace_api.Span, request: Any, response: Any) -> None:
        self.response(span, request, response)

    def requests_request(self, span: trace_api.Span, request: Any) -> None:
        try:
            self.set_target(span, getattr(request, "url", ""))
        except Exception:
            _logger.exception("fluoro: requests request hook failed")


def instrument_http(tracing: Tracing | None = None) -> bool:
    """Trace httpx and requests calls through `tracing` (default: the active pipeline)."""
    tracing = tracing or ACTIVE.tracing
    if tracing is None:
        _logger.warning("fluoro: instrument_http() called before configure(); nothing to do")
        return False
    uninstrument_http()
    hooks = _Hooks(peer_service_mapping(os.environ.get(PEER_SERVICE_MAPPING_ENV, "")))
    HTTPXClientInstrumentor().instrument(
        tracer_provider=tracing.provider,
        request_hook=hooks.httpx_request,
        response_hook=hooks.response,
        async_request_hook=hooks.httpx_async_request,
        async_response_hook=hooks.httpx_async_response,
    )
    RequestsInstrumentor().instrument(
        tracer_provider=tracing.provider, request_hook=hooks.requests_request, response_hook=hooks.response
    )
    return True


def uninstrument_http() -> None:
    """Undo instrument_http()."""
    for instrumentor in (HTTPXClientInstrumentor(), RequestsInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
