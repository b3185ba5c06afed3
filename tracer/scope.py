"""Opening and closing a span around user code, shared by ``@traced``, handlers and the ASGI
middleware. Every function here swallows its own failures: telemetry never raises into user
code, and the user's exception is left for the caller to re-raise unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util import types

from tracer import semconv
from tracer.annotations import annotate_span, metadata_json
from tracer.current_context import attach, detach
from tracer.runtime import Tracing
from tracer.taxonomy import mark_exception

_logger = logging.getLogger(__name__)


class OpenSpan(NamedTuple):
    """A started span, the context holding it, and the token that made that context current
    (None when the caller makes it current itself). A tuple: one is made per call."""

    span: trace_api.Span
    context: context_api.Context
    token: object


def open_span(
    tracing: Tracing,
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    *,
    annotations: Mapping[str, str | int | float | bool] | None = None,
    attributes: dict[str, types.AttributeValue] | None = None,
    parent_context: context_api.Context | None = None,
    links: Sequence[Link] = (),
    start_time_ns: int | None = None,
    skip_unsampled_parent: bool = True,
    make_current: bool = True,
) -> OpenSpan | None:
    """Start a span and make it current; None when there is nothing to record.

    Under an unsampled parent (with a parent-based sampler, and no tail-keep recording under it)
    this returns None at once: no span object, no context change, so the untraced path costs one
    context lookup.
    """
    try:
        ctx = context_api.get_current() if parent_context is None else parent_context
        parent_span = trace_api.get_current_span(ctx)
        parent = parent_span.get_span_context()
        if skip_unsampled_parent and tracing.spans.skips(parent_span, parent):
            return None
        span = tracing.spans.start_under(parent, ctx, name, kind, attributes, links, start_time_ns)
        return _opened(tracing, span, ctx, make_current, annotations)
    except Exception:
        _logger.exception("fluoro: could not start span %r", name)
        return None


def open_span_under(
    tracing: Tracing,
    ctx: context_api.Context,
    parent: trace_api.SpanContext,
    name: str,
    kind: SpanKind,
    annotations: Mapping[str, str | int | float | bool] | None,
) -> OpenSpan | None:
    """open_span for a caller that looked the current context and its span up already (and
    decided not to skip): ``@traced``'s per-call path, one context lookup fewer."""
    try:
        span = tracing.spans.start_under(parent, ctx, name, kind, None, (), None)
        return _opened(tracing, span, ctx, True, annotations)
    except Exception:
        _logger.exception("fluoro: could not start span %r", name)
        return None


def _opened(
    tracing: Tracing,
    span: trace_api.Span,
    ctx: context_api.Context,
    make_current: bool,
    annotations: Mapping[str, str | int | float | bool] | None,
) -> OpenSpan:
    span_context = trace_api.set_span_in_context(span, ctx)
    token = attach(span_context) if make_current else None
    if annotations and span.is_recording():
        for key, value in annotations.items():
            annotate_span(span, tracing.annotations, key, value)
    return OpenSpan(span, span_context, token)


def close_span(opened: OpenSpan, response: object = None, *, capture_response: bool = False) -> None:
    """Detach and end the span after user code returned normally."""
    try:
        if opened.token is not None:
            detach(opened.token)
        if capture_response and opened.span.is_recording():
            text = metadata_json("response", response)
            if text is not None:
                opened.span.set_attribute(semconv.RESPONSE, text)
        opened.span.end()
    except Exception:
        _logger.exception("fluoro: could not end span")


def fail_span(opened: OpenSpan, exc: BaseException, *, capture_error: bool = True) -> None:
    """Detach and end the span after user code raised `exc` (the caller re-raises it)."""
    try:
        if opened.token is not None:
            detach(opened.token)
        if isinstance(exc, Exception) and opened.span.is_recording():
            mark_exception(opened.span, exc, record=capture_error)
        opened.span.end()
    except Exception:
        _logger.exception("fluoro: could not end span")
