"""The current OpenTelemetry context, the span in it, attach and detach: C calls where the SDK allows.

Why not only the API: ``@traced`` looks the current span up on every call, and through
``context.get_current()`` and ``trace.get_current_span()`` (two layers of Python calls, then an
``isinstance`` test against an abstract class) that is ~0.3 us, half of what a call under an
unsampled parent may cost in all (``bench/tracer_overhead.py``, ``traced_unsampled``). Where
OpenTelemetry's runtime context is its default one (a ContextVar), that ContextVar's ``get`` is
the current context, the span is the entry under the API's own key, and attaching a context is
setting that ContextVar (what the API's attach does, returning the same token; detaching resets
it, ~0.1 us less a span than through the API's layers). These are private names
of opentelemetry-api: when either is missing (another runtime context named by
OTEL_PYTHON_CONTEXT, or a version that moved them), the API's functions are used and
:data:`SPAN_KEY` is a key no context holds, so callers take their general path.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from opentelemetry import context as context_api
from opentelemetry.context import Context


def _runtime_variable() -> ContextVar[Context] | None:
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and isinstance(variable, ContextVar):
        return variable
    return None


def _current_context_getter() -> Callable[[], Context]:
    variable = _runtime_variable()
    return variable.get if variable is not None else context_api.get_current


def _span_key() -> object:
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:
        return object()
    return _SPAN_KEY


def _attacher() -> tuple[Callable[[Context], object], Callable[[object], None]]:
    variable = _runtime_variable()
    if variable is None:
        return context_api.attach, context_api.detach  # type: ignore[return-value]
    reset = variable.reset

    def detach(token: object) -> None:
        try:
            reset(token)  # type: ignore[arg-type]
        except (ValueError, RuntimeError, TypeError):
            context_api.detach(token)  # type: ignore[arg-type]  # fails again, and logs it as the API does

    return variable.set, detach


current_context: Callable[[], Context] = _current_context_getter()
SPAN_KEY: object = _span_key()
attach, detach = _attacher()
