"""``@traced``: one span per call of a function, method, coroutine, generator or async generator.

The wrapper reads the active pipeline per call (decorators run at import time, before
``configure()``); without one it calls straight through. A generator's span covers the whole
iteration, but is current only while the generator's own code runs, never while its consumer
does, so spans the consumer starts between items are not mistaken for the generator's children.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar, cast, overload

from opentelemetry import context as context_api
from opentelemetry.trace import SpanKind, get_current_span

from tracer.current_context import SPAN_KEY, current_context
from tracer.runtime import ACTIVE, Tracing
from tracer.scope import OpenSpan, close_span, fail_span, open_span, open_span_under

F = TypeVar("F", bound=Callable[..., Any])
AnnotationValue = str | int | float | bool


class TracedOptions(NamedTuple):
    """How a decorated function is traced. (A NamedTuple, not a frozen dataclass: building a
    dataclass's methods costs ~0.5 ms of every cold start.)"""

    name: str | None = None
    kind: SpanKind = SpanKind.INTERNAL
    capture_response: bool = False
    capture_error: bool = True
    annotations: Mapping[str, AnnotationValue] = MappingProxyType({})


def open_traced(
    tracing: Tracing, ctx: context_api.Context, name: str, kind: SpanKind, annotations: Mapping[str, Any] | None
) -> OpenSpan | None:
    """A call's span under the current context `ctx`, or None when the call is untraced: under an
    unsampled parent whose decision the sampler honours and that tail-keep does not record under.
    The caller has checked the parent the factory last skipped (by identity: the cheapest test)."""
    parent_span = get_current_span(ctx)
    parent = parent_span.get_span_context()
    if not parent.trace_flags.sampled and parent.is_valid and tracing.spans.skips(parent_span, parent):
        return None
    return open_span_under(tracing, ctx, parent, name, kind, annotations)


def span_name_for(fn: Callable[..., Any], options: TracedOptions) -> str:
    return str(options.name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function"))


def wrap_function(fn: F, options: TracedOptions) -> F:
    """`fn` wrapped so each call (or iteration) is a span; signature and metadata preserved."""
    name = span_name_for(fn, options)
    if inspect.isasyncgenfunction(fn):
        return cast(F, _wrap_async_generator(fn, name, options))
    if inspect.isgeneratorfunction(fn):
        return cast(F, _wrap_generator(fn, name, options))
    if inspect.iscoroutinefunction(fn):
        return cast(F, _wrap_coroutine(fn, name, options))
    return cast(F, _wrap_plain(fn, name, options))


def _wrap_plain(fn: Callable[..., Any], name: str, options: TracedOptions) -> Callable[..., Any]:
    kind, annotations = options.kind, options.annotations or None
    capture_response, capture_error = options.capture_response, options.capture_error

    @functools.wraps(fn)
    def traced_call(*args: Any, **kwargs: Any) -> Any:
        tracing = ACTIVE.tracing
        if tracing is None:
            return fn(*args, **kwargs)
        ctx = current_context()
        if ctx.get(SPAN_KEY) is tracing.spans.skipped_parent:  # type: ignore[call-overload]
            return fn(*args, **kwargs)
        opened = open_traced(tracing, ctx, name, kind, annotations)
        if opened is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            fail_span(opened, exc, capture_error=capture_error)
            raise
        close_span(opened, result, capture_response=capture_response)
        return result

    return traced_call


def _wrap_coroutine(fn: Callable[..., Any], name: str, options: TracedOptions) -> Callable[..., Any]:
    kind, annotations = options.kind, options.annotations or None
    capture_response, capture_error = options.capture_response, options.capture_error

    @functools.wraps(fn)
    async def traced_call(*args: Any, **kwargs: Any) -> Any:
        tracing = ACTIVE.tracing
        if tracing is None:
            return await fn(*args, **kwargs)
        ctx = current_context()
        if ctx.get(SPAN_KEY) is tracing.spans.skipped_parent:  # type: ignore[call-overload]
            return await fn(*args, **kwargs)
        opened = open_traced(tracing, ctx, name, kind, annotations)
        if opened is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            fail_span(opened, exc, capture_error=capture_error)
            raise
        close_span(opened, result, capture_response=capture_response)
        return result

    return traced_call


def _end(opened: OpenSpan, exc: BaseException | None, capture_error: bool) -> None:
    if exc is None or isinstance(exc, GeneratorExit):
        close_span(opened)
    else:
        fail_span(opened, exc, capture_error=capture_error)


def _wrap_generator(fn: Callable[..., Any], name: str, options: TracedOptions) -> Callable[..., Any]:
    @functools.wraps(fn)
    def traced_iteration(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        inner = fn(*args, **kwargs)
        tracing = ACTIVE.tracing
        opened = (
            open_span(tracing, name, options.kind, annotations=options.annotations or None, make_current=False)
            if tracing is not None
            else None
        )
        if opened is None:
            return (yield from inner)
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = context_api.attach(opened.context)
                try:
                    if to_throw is not None:
                        pending, to_throw = to_throw, None
                        item = inner.throw(pending)
                    else:
                        item = inner.send(to_send)
                finally:
                    context_api.detach(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as thrown:  # noqa: BLE001 - forwarded into the inner generator
                    to_throw = thrown
        except StopIteration as stop:
            _end(opened, None, options.capture_error)
            return stop.value
        except BaseException as exc:
            _end(opened, exc, options.capture_error)
            raise

    return traced_iteration


def _wrap_async_generator(fn: Callable[..., Any], name: str, options: TracedOptions) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def traced_iteration(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        inner = fn(*args, **kwargs)
        tracing = ACTIVE.tracing
        opened = (
            open_span(tracing, name, options.kind, annotations=options.annotations or None, make_current=False)
            if tracing is not None
            else None
        )
        if opened is None:
            async for item in inner:
                yield item
            return
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = context_api.attach(opened.context)
                try:
                    if to_throw is not None:
                        pending, to_throw = to_throw, None
                        item = await inner.athrow(pending)
                    else:
                        item = await inner.asend(to_send)
                finally:
                    context_api.detach(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as thrown:  # noqa: BLE001 - forwarded into the inner generator
                    to_throw = thrown
        except StopAsyncIteration:
            _end(opened, None, options.capture_error)
        except BaseException as exc:
            _end(opened, exc, options.capture_error)
            raise

    return traced_iteration


class Traced:
    """The ``traced`` decorator: ``@traced``, ``@traced(name=...)`` and ``@traced.handler``."""

    @overload
    def __call__(self, fn: F, /) -> F: ...

    @overload
    def __call__(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        capture_response: bool = False,
        capture_error: bool = True,
        annotations: Mapping[str, AnnotationValue] | None = None,
    ) -> Callable[[F], F]: ...

    def __call__(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        capture_response: bool = False,
        capture_error: bool = True,
        annotations: Mapping[str, AnnotationValue] | None = None,
    ) -> F | Callable[[F], F]:
        options = TracedOptions(name, kind, capture_response, capture_error, dict(annotations or {}))
        if fn is None:
            return lambda f: wrap_function(f, options)
        return wrap_function(fn, options)

    @overload
    def handler(self, fn: F, /) -> F: ...

    @overload
    def handler(
        self, fn: None = None, /, *, name: str | None = None, capture_response: bool = False
    ) -> Callable[[F], F]: ...

    def handler(
        self, fn: F | None = None, /, *, name: str | None = None, capture_response: bool = False
    ) -> F | Callable[[F], F]:
        """Trace a Lambda-style ``handler(event, context)``: see tracer.handler."""
        from tracer.handler import HandlerOptions, wrap_handler  # here: only handlers pay for trigger parsing

        options = HandlerOptions(name=name, capture_response=capture_response)
        if fn is None:
            return lambda f: wrap_handler(f, options)
        return wrap_handler(fn, options)


traced = Traced()
