"""Tail-keep: the spans head sampling dropped, held until their local root ends, kept if it failed.

Head sampling decides before anything happens, so at 5% it drops 95% of the traces that would
explain an outage. With tail-keep, a span head sampling dropped is still recorded (a LightSpan
with the sampled flag off, so downstream services see the head decision) and ends here instead
of the exporter. When the local root of its trace ends (the span without a parent in this
process), the trace's local part is passed on whole, each span marked ``fluoro.sampling =
tail:REASON``, if any of its spans was a throttle, an error or fault, or a cold start, or the root
took longer than the slow threshold; otherwise it is discarded.

Memory is bounded twice: at most `max_trace_spans` held per trace (more are counted as dropped,
though their failure still keeps the trace) and `max_spans` held in all; past that, the trace
held longest is evicted (a root that never ends cannot hold memory for ever). Only the local
part of a trace can be kept: a parent in another process that was not sampled has already
gone, so a failing downstream service shows its own part, under a caller the map cannot see.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Final, NamedTuple

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from tracer import semconv
from tracer.lightspan import LightSpan

SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
KEPT_REMEMBERED: Final = 1024
REASONS: Final = ("throttle", "error", "cold_start", "slow")  # the first that applies names the keep


class TailKeepSettings(NamedTuple):
    """Whether unsampled traces are recorded for tail-keep, and the bounds on what is held.
    (A NamedTuple, not a frozen dataclass: building a dataclass's methods costs ~0.5 ms of every
    cold start.)"""

    enabled: bool = True
    slow_ms: float | None = None  # keep a trace whose local root took longer (None: no such rule)
    max_trace_spans: int = 256
    max_spans: int = 4096


class TailStats(NamedTuple):
    """What tail-keep did so far: traces kept by reason, discarded, and spans lost to the caps."""

    held_spans: int
    kept_traces: Mapping[str, int]
    discarded_traces: int
    dropped_spans: int


def reason_of(span: ReadableSpan) -> str | None:
    """Why this one span would keep its trace (the first of REASONS that applies), else None."""
    attributes = span._attributes
    if attributes:
        if attributes.get(semconv.THROTTLE):
            return "throttle"
        if attributes.get(semconv.FAULT) or attributes.get(semconv.ERROR):
            return "error"
    if span._status.status_code is StatusCode.ERROR:
        return "error"
    if attributes and attributes.get(semconv.FAAS_COLDSTART) is True:
        return "cold_start"
    return None


def first_reason(*reasons: str | None) -> str | None:
    """The reason among `reasons` that comes first in REASONS."""
    present = [r for r in reasons if r is not None]
    return min(present, key=REASONS.index) if present else None


def _mark_kept(span: ReadableSpan, label: str) -> None:
    """Label an ended tail span and flag it sampled now, so span processors export it (they pass
    on sampled spans only); what was propagated while it ran said "not sampled", as decided."""
    attributes = span._attributes
    if isinstance(attributes, dict):
        attributes[semconv.SAMPLING] = label
    else:  # an SDK span's: frozen when it ended
        span._attributes = {**(attributes or {}), semconv.SAMPLING: label}
    old = span._context
    if old is not None:
        span._context = SpanContext(old.trace_id, old.span_id, old.is_remote, SAMPLED, old.trace_state)
        if isinstance(span, LightSpan):
            span._span_context = span._context


class _HeldTrace:
    __slots__ = ("reason", "spans")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.reason: str | None = None


class TailBuffer:
    """Where unsampled spans end: held per trace, passed to `downstream` when their root decides."""

    def __init__(
        self,
        downstream: SpanProcessor,
        settings: TailKeepSettings,
        in_init_phase: Callable[[], bool] = lambda: False,
    ) -> None:
        self.downstream = downstream
        self.settings = settings
        # Before a Lambda environment's first invocation, spans have no invocation trace yet:
        # they go on to the init buffer, which joins them to the first (cold, so kept) one.
        self._in_init_phase = in_init_phase
        self._init_phase_over = False
        self._slow_ns = int(settings.slow_ms * 1e6) if settings.slow_ms is not None else None
        self._held: dict[int, _HeldTrace] = {}  # insertion order: the oldest trace first
        self._held_spans = 0
        self._kept: dict[str, int] = dict.fromkeys(REASONS, 0)
        self._discarded = 0
        self._dropped = 0
        # The traces kept last, so a span that ends after its root (work left running) follows
        # its trace out; one of a discarded trace is held until evicted, and counted as dropped.
        self._kept_recently: dict[int, str] = {}
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        """A tail-recorded span ended: hold it, or decide its trace if it is the local root."""
        parent = span._parent
        if parent is None or parent.is_remote:
            self._decide(span)
        else:
            self._hold(span)

    def _hold(self, span: ReadableSpan) -> None:
        trace_id = span._context.trace_id  # type: ignore[union-attr]
        label = self._kept_recently.get(trace_id)
        if label is not None:  # it ended after its root, which kept the trace: it goes too
            _mark_kept(span, label)
            self.downstream.on_end(span)
            return
        reason = reason_of(span)
        with self._lock:
            held = self._held.get(trace_id)
            if held is None:
                held = self._held[trace_id] = _HeldTrace()
            if reason is not None:
                held.reason = first_reason(held.reason, reason)
            if len(held.spans) >= self.settings.max_trace_spans:
                self._dropped += 1
                return
            while self._held_spans >= self.settings.max_spans and self._evict_oldest(trace_id):
                pass
            if self._held_spans >= self.settings.max_spans:
                self._dropped += 1
                return
            held.spans.append(span)
            self._held_spans += 1

    def _evict_oldest(self, keep_trace_id: int) -> bool:
        """Evict the trace held longest (not `keep_trace_id`); False when there is none."""
        for trace_id in self._held:
            if trace_id != keep_trace_id:
                evicted = self._held.pop(trace_id)
                self._held_spans -= len(evicted.spans)
                self._dropped += len(evicted.spans)
                return True
        return False

    def _decide(self, root: ReadableSpan) -> None:
        held = None
        if self._held:  # most roots have nothing held: skip the lock
            with self._lock:
                held = self._held.pop(root._context.trace_id, None)  # type: ignore[union-attr]
                if held is not None:
                    self._held_spans -= len(held.spans)
        if not self._init_phase_over:
            if self._in_init_phase():
                for span in [*(held.spans if held is not None else ()), root]:
                    self.downstream.on_end(span)
                return
            self._init_phase_over = True  # an environment's init phase never comes back
        reason = reason_of(root) if held is None else first_reason(reason_of(root), held.reason)
        if reason is None and self._slow_ns is not None and self._took_ns(root) > self._slow_ns:
            reason = "slow"
        if reason is None:
            self._discarded += 1
            return
        self._kept[reason] += 1
        label = "tail:" + reason
        with self._lock:
            self._kept_recently[root._context.trace_id] = label  # type: ignore[union-attr]
            if len(self._kept_recently) > KEPT_REMEMBERED:
                del self._kept_recently[next(iter(self._kept_recently))]
        for span in [*(held.spans if held is not None else ()), root]:
            _mark_kept(span, label)
            self.downstream.on_end(span)

    @staticmethod
    def _took_ns(root: ReadableSpan) -> int:
        return (root._end_time or 0) - (root._start_time or 0)

    def stats(self) -> TailStats:
        with self._lock:
            return TailStats(self._held_spans, dict(self._kept), self._discarded, self._dropped)


class TailAwareSampler(Sampler):
    """The provider's sampler with tail-keep: what `inner` drops is recorded, unsampled, so spans
    of other instrumentations (botocore's, an ASGI framework's) under a held trace are held too."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"TailAware{{{self.inner.get_description()}}}"


class TailRouter(SpanProcessor):
    """The provider's span processor with tail-keep: sampled spans go on to `sampled`, the rest
    to the tail buffer (the SDK's processors export sampled spans only)."""

    def __init__(self, sampled: SpanProcessor, tail: TailBuffer) -> None:
        self.sampled = sampled
        self.tail = tail

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.sampled.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        context = span._context
        if context is not None and context.trace_flags.sampled:
            self.sampled.on_end(span)
        else:
            self.tail.on_end(span)

    def shutdown(self) -> None:
        self.sampled.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.sampled.force_flush(timeout_millis)
