"""``@traced.handler``: tracing Lambda-style ``handler(event, context)`` functions.

Each invocation is one span named after the function (SERVER, or CONSUMER for queue and stream
batches) carrying the FaaS semantic conventions. Its parent is the invocation's own trace
context: ``_X_AMZN_TRACE_ID``, which Lambda sets per invocation, else the API Gateway request
headers. Upstream messages (SQS, SNS, Kinesis, EventBridge) become links, one each. On a cold
start an ``Initialization`` child covers process start to this invocation, with the slowest
imports and the spans recorded during init beneath it. Where the Lambda service does not
record them itself (the local cloud sets ``FLUORO_LAMBDA_PHASES``), ``Invocation`` (the handler's
run) and ``Overhead`` (the runtime's work after it returned) children split the span's time as
X-Ray's function segment does. The spans are flushed before the handler returns, because the
environment may be frozen right after.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import Link

from tracer import semconv
from tracer.events import Trigger, detect_trigger, http_attributes, http_headers, message_carriers
from tracer.propagation import extract_from
from tracer.runtime import ACTIVE, Tracing
from tracer.scope import OpenSpan, close_span, fail_span, open_span
from tracer.taxonomy import mark_http_status

_logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
SLOWEST_IMPORTS: Final = 10
_XRAY = AwsXRayPropagator()


@dataclass(frozen=True)
class HandlerOptions:
    """How a handler is traced."""

    name: str | None = None
    capture_response: bool = False
    flush_timeout_s: float = 2.0


def invocation_parent(tracing: Tracing, event: object, trigger: Trigger) -> context_api.Context:
    """The context the invocation continues: Lambda's _X_AMZN_TRACE_ID, else gateway headers."""
    lambda_header = os.environ.get(semconv.LAMBDA_TRACE_ENV, "")
    if lambda_header:
        ctx = _XRAY.extract({semconv.XRAY_HEADER: lambda_header}, context_api.Context())
        if trace_api.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    if trigger.name == "http" and isinstance(event, Mapping):
        ctx = extract_from(http_headers(event), tracing.propagator)
        if trace_api.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    return context_api.get_current()


def message_links(tracing: Tracing, event: object) -> list[Link]:
    """A link to each upstream message's span."""
    links = []
    for carrier in message_carriers(event):
        span_context = trace_api.get_current_span(extract_from(carrier, tracing.propagator)).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    return links


def invocation_attributes(event: object, context: object, trigger: Trigger, cold: bool) -> dict[str, Any]:
    """FaaS semantic-convention attributes from the event, the context and the environment."""
    attributes: dict[str, Any] = {
        semconv.FAAS_TRIGGER: trigger.name,
        semconv.FAAS_COLDSTART: cold,
        semconv.ORIGIN: semconv.ORIGIN_LAMBDA_FUNCTION,
        semconv.CLOUD_PROVIDER: "aws",
    }
    if trigger.source:
        attributes[semconv.EVENT_SOURCE] = trigger.source
    fields = {
        semconv.FAAS_INVOCATION_ID: getattr(context, "aws_request_id", None),
        semconv.FAAS_NAME: getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        semconv.FAAS_VERSION: getattr(context, "function_version", None)
        or os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        semconv.CLOUD_RESOURCE_ID: getattr(context, "invoked_function_arn", None),
        semconv.FAAS_INSTANCE: os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
    }
    attributes.update({k: str(v) for k, v in fields.items() if v})
    memory_mb = getattr(context, "memory_limit_in_mb", None)
    if isinstance(memory_mb, int) or (isinstance(memory_mb, str) and memory_mb.isascii() and memory_mb.isdigit()):
        attributes[semconv.FAAS_MAX_MEMORY] = int(memory_mb) * 1024 * 1024
    if trigger.name == "http" and isinstance(event, Mapping):
        attributes.update(http_attributes(event))
    return attributes


def record_initialization(tracing: Tracing, handler_span: trace_api.Span, invocation_start_ns: int) -> None:
    """The cold start's Initialization span, its slowest imports, and the held init spans."""
    process = tracing.process
    if not handler_span.is_recording():
        tracing.init_buffer.release(None, None)
        return
    parent_ctx = trace_api.set_span_in_context(handler_span, context_api.Context())
    init_span = tracing.spans.start(
        semconv.INITIALIZATION_SPAN_NAME, parent_context=parent_ctx, start_time_ns=process.start_ns
    )
    init_span.set_attribute(semconv.ORIGIN, semconv.ORIGIN_LAMBDA_FUNCTION)
    init_ctx = trace_api.set_span_in_context(init_span, context_api.Context())
    if process.imports is not None:
        process.imports.uninstall()
        for timing in process.imports.slowest(SLOWEST_IMPORTS):
            child = tracing.spans.start(
                f"import {timing.module}", parent_context=init_ctx, start_time_ns=timing.start_ns
            )
            child.set_attribute(semconv.IMPORT_MODULE, timing.module)
            child.end(timing.end_ns)
    init_span.end(invocation_start_ns)
    trace_id = handler_span.get_span_context().trace_id
    tracing.init_buffer.release(trace_id, init_span.get_span_context())


def record_phases(tracing: Tracing, handler_span: trace_api.Span, start_ns: int, returned_ns: int) -> None:
    """The runtime's Invocation (start to the handler's return) and Overhead (after it) spans."""
    parent_ctx = trace_api.set_span_in_context(handler_span, context_api.Context())
    for name, begin_ns, end_ns in (
        (semconv.INVOCATION_SPAN_NAME, start_ns, returned_ns),
        (semconv.OVERHEAD_SPAN_NAME, returned_ns, time.time_ns()),
    ):
        phase = tracing.spans.start(name, parent_context=parent_ctx, start_time_ns=begin_ns)
        phase.set_attribute(semconv.ORIGIN, semconv.ORIGIN_LAMBDA_FUNCTION)
        phase.end(max(begin_ns, end_ns))


class _Invocation:
    """Begin and end one traced invocation; every step swallows telemetry failures."""

    def __init__(self, tracing: Tracing, options: HandlerOptions, fallback_name: str) -> None:
        self.tracing = tracing
        self.options = options
        self.fallback_name = fallback_name
        self.opened: OpenSpan | None = None
        self.trigger: Trigger | None = None
        self.start_ns = 0

    def begin(self, event: object, context: object) -> None:
        start_ns = self.start_ns = time.time_ns()
        cold = self.tracing.process.claim_cold_start()
        try:
            trigger = self.trigger = detect_trigger(event)
            attributes = invocation_attributes(event, context, trigger, cold)
            name = self.options.name or str(attributes.get(semconv.FAAS_NAME) or self.fallback_name)
            self.opened = open_span(
                self.tracing,
                name,
                trigger.kind,
                attributes=attributes,
                parent_context=invocation_parent(self.tracing, event, trigger),
                links=message_links(self.tracing, event),
                start_time_ns=start_ns,
                skip_unsampled_parent=False,  # keep an unsampled decision current for downstream calls
            )
            if cold:
                if self.opened is None:
                    self.tracing.init_buffer.release(None, None)
                else:
                    record_initialization(self.tracing, self.opened.span, start_ns)
        except Exception:
            _logger.exception("fluoro: could not start the invocation span")

    def succeed(self, result: object) -> None:
        if self.opened is None:
            return
        returned_ns = time.time_ns()
        try:
            if self.trigger is not None and self.trigger.name == "http" and isinstance(result, Mapping):
                status = result.get("statusCode")
                if isinstance(status, int):
                    mark_http_status(self.opened.span, status, self.trigger.kind)
        except Exception:
            _logger.exception("fluoro: could not read the handler's response")
        self._phases(returned_ns)
        close_span(self.opened, result, capture_response=self.options.capture_response)
        self.tracing.flush(self.options.flush_timeout_s)

    def fail(self, exc: BaseException) -> None:
        if self.opened is None:
            return
        self._phases(time.time_ns())
        fail_span(self.opened, exc)
        self.tracing.flush(self.options.flush_timeout_s)

    def _phases(self, returned_ns: int) -> None:
        if self.opened is None or not self.tracing.settings.lambda_phases or not self.opened.span.is_recording():
            return
        try:
            record_phases(self.tracing, self.opened.span, self.start_ns, returned_ns)
        except Exception:
            _logger.exception("fluoro: could not record the invocation phases")


def wrap_handler(fn: F, options: HandlerOptions) -> F:
    """`fn(event, context)` wrapped so each invocation is a FaaS span."""
    fallback_name = getattr(fn, "__qualname__", "handler")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def traced_async_handler(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
            tracing = ACTIVE.tracing
            if tracing is None:
                return await fn(event, context, *args, **kwargs)
            invocation = _Invocation(tracing, options, fallback_name)
            invocation.begin(event, context)
            try:
                result = await fn(event, context, *args, **kwargs)
            except BaseException as exc:
                invocation.fail(exc)
                raise
            invocation.succeed(result)
            return result

        return cast(F, traced_async_handler)

    @functools.wraps(fn)
    def traced_handler(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
        tracing = ACTIVE.tracing
        if tracing is None:
            return fn(event, context, *args, **kwargs)
        invocation = _Invocation(tracing, options, fallback_name)
        invocation.begin(event, context)
        try:
            result = fn(event, context, *args, **kwargs)
        except BaseException as exc:
            invocation.fail(exc)
            raise
        invocation.succeed(result)
        return result

    return cast(F, traced_handler)
