"""Pure ASGI middleware: one SERVER span per HTTP request, X-Ray style.

Pure ASGI (no BaseHTTPMiddleware) so streaming responses and background tasks are untouched
and the cost is one wrapper per message. The span continues ``traceparent`` or
``X-Amzn-Trace-Id``, is named by the route template once routing has matched (Starlette and
FastAPI leave the matched route in ``scope["route"]``; until then, and for paths no route
matches, by the method alone), carries the HTTP semantic conventions
and X-Ray's error/fault/throttle flags, and its id is returned in ``X-Amzn-Trace-Id`` as X-Ray
does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind

from tracer import semconv
from tracer.events import MAX_REQUEST_TEXT
from tracer.propagation import extract_from, xray_header
from tracer.runtime import ACTIVE, Tracing
from tracer.scope import OpenSpan, close_span, fail_span, open_span
from tracer.taxonomy import mark_exception, mark_http_status

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TRACE_HEADER = semconv.XRAY_HEADER.lower().encode("latin-1")


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers as a str mapping (later duplicates win)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def request_attributes(scope: Scope, headers: Mapping[str, str]) -> dict[str, Any]:
    """HTTP semantic-convention attributes of an ASGI request."""
    attributes: dict[str, Any] = {
        semconv.HTTP_REQUEST_METHOD: scope.get("method", "GET"),
        semconv.URL_PATH: str(scope.get("path", "/"))[:MAX_REQUEST_TEXT],
        semconv.URL_SCHEME: scope.get("scheme", "http"),
    }
    query = scope.get("query_string", b"")
    if query:
        attributes[semconv.URL_QUERY] = query[:MAX_REQUEST_TEXT].decode("latin-1")
    if "host" in headers:
        host, _, port = headers["host"].partition(":")
        attributes[semconv.SERVER_ADDRESS] = host[:MAX_REQUEST_TEXT]
        if port.isascii() and port.isdigit() and len(port) <= 5:  # "²".isdigit(), yet int() refuses it
            attributes[semconv.SERVER_PORT] = int(port)
    if "user-agent" in headers:
        attributes[semconv.USER_AGENT] = headers["user-agent"][:MAX_REQUEST_TEXT]
    client = scope.get("client")
    if client:
        attributes[semconv.CLIENT_ADDRESS] = str(client[0])
    return attributes


def route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def native_server_span(scope: Scope) -> trace_api.Span | None:
    """The recording SERVER span a framework's own instrumentation opened for this request."""
    span = getattr(scope.get("fastapi.telemetry"), "span", None)
    return span if isinstance(span, trace_api.Span) and span.is_recording() else None


class TracingMiddleware:
    """Wrap an ASGI app so each HTTP request is a SERVER span.

    `span_name` fixes the name (an API Gateway stage is named ``api/stage``); otherwise it is
    ``METHOD /route/{template}``. `origin` is the X-Ray origin to record, and `tracing` the
    pipeline (default: the active one, looked up per request).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracing: Tracing | None = None,
        span_name: str | None = None,
        origin: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.span_name = span_name
        self.static_attributes = dict(attributes or {})
        if origin:
            self.static_attributes[semconv.ORIGIN] = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracing = self.tracing or ACTIVE.tracing
        if scope.get("type") != "http" or tracing is None:
            await self.app(scope, receive, send)
            return
        native = native_server_span(scope)
        opened = self._adopt(native, scope) if native is not None else self._open(tracing, scope)
        if opened is None:
            await self.app(scope, receive, send)
            return
        owned = native is None
        responded: list[bool] = []

        async def send_with_trace_header(message: Message) -> None:
            # Marked at response start: a framework that owns the span may end it with the body.
            if message.get("type") == "http.response.start":
                responded.append(True)
                self._mark_response(opened, scope, int(message.get("status", 200)))
                self._add_trace_header(message, opened)
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace_header)
        except BaseException as exc:
            if not responded:
                self._mark_response(opened, scope, None)
            if owned:
                fail_span(opened, exc)
            else:
                self._release(opened, exc)
            raise
        if owned:
            close_span(opened)
        else:
            self._release(opened, None)

    def _adopt(self, span: trace_api.Span, scope: Scope) -> OpenSpan | None:
        try:
            span.set_attributes(self.static_attributes)
            if self.span_name:
                span.update_name(self.span_name)
            context = trace_api.set_span_in_context(span)
            return OpenSpan(span, context, context_api.attach(context))
        except Exception:
            _logger.exception("fluoro: could not adopt the framework's request span")
            return None

    @staticmethod
    def _release(opened: OpenSpan, exc: BaseException | None) -> None:
        """Give an adopted span back to its owner: flags set, not ended."""
        try:
            context_api.detach(opened.token)  # type: ignore[arg-type]
            if isinstance(exc, Exception):
                mark_exception(opened.span, exc)
        except Exception:
            _logger.exception("fluoro: could not release the framework's request span")

    def _open(self, tracing: Tracing, scope: Scope) -> OpenSpan | None:
        try:
            headers = request_headers(scope)
            attributes = {**request_attributes(scope, headers), **self.static_attributes}
            # "{method}" until routing names the route (OpenTelemetry's HTTP conventions): a raw
            # path would make a span name per path a scanner tries.
            name = self.span_name or str(scope.get("method", "GET"))
            return open_span(
                tracing,
                name,
                SpanKind.SERVER,
                attributes=attributes,
                parent_context=extract_from(headers, tracing.propagator),
                skip_unsampled_parent=False,
            )
        except Exception:
            _logger.exception("fluoro: could not start the request span")
            return None

    @staticmethod
    def _add_trace_header(message: Message, opened: OpenSpan) -> None:
        try:
            context = opened.span.get_span_context()
            if context.is_valid:
                headers = [h for h in message.get("headers", []) if h[0].lower() != _TRACE_HEADER]
                headers.append((_TRACE_HEADER, xray_header(context).encode("latin-1")))
                message["headers"] = headers
        except Exception:
            _logger.exception("fluoro: could not add the trace header")

    def _mark_response(self, opened: OpenSpan, scope: Scope, status: int | None) -> None:
        try:
            span = opened.span
            if not span.is_recording():
                return
            template = route_template(scope)
            if template:
                span.set_attribute(semconv.HTTP_ROUTE, template)
                if self.span_name is None:
                    span.update_name(f"{scope.get('method', 'GET')} {template}")
            if status is not None:
                mark_http_status(span, status, SpanKind.SERVER)
        except Exception:
            _logger.exception("fluoro: could not finish the request span")
