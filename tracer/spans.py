"""Starting Fluoro's spans: sampling, ids and parenting, the OpenTelemetry SDK's rules on a fast path.

The sampler is consulted only when its answer is not already known: a parent-based sampler
always samples the child of a local sampled parent, and ``always_on`` / ``parentbased_always_on``
always sample a root. Ids are made as the X-Ray id generator makes them (a trace id's first 32
bits are the epoch second, so it is also a valid X-Ray trace id; the rest, and span ids, from
``random.getrandbits`` as the SDK's generators), inline: through the generator objects they cost
~0.35 us a root span. A span context is built without SpanContext's checks, which the ids made
here pass by construction (~0.2 us a span), once the tuple's layout is confirmed at import.

With tail-keep (tracer/tail_keep.py), a span head sampling drops is still recorded, unsampled,
and ends into the tail buffer instead; a root kept by a fixed ratio below one carries that
probability in its trace state (sampling_weight.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from random import getrandbits

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

from tracer.lightspan import DEFAULT_LIMITS, BoundedLightSpan, LightSpan, SpanLimits
from tracer.sampling import SamplerChoice
from tracer.sampling_weight import with_threshold
from tracer.tail_keep import TailBuffer

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_TRACE_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT
_NS_PER_S = 1_000_000_000


def new_span_id() -> int:
    while not (span_id := getrandbits(64)):  # zero is the invalid span id
        pass
    return span_id


def new_trace_id(epoch_s: int) -> int:
    """An X-Ray-compatible trace id: the epoch second in its first 32 bits, then 96 random ones."""
    return (epoch_s << 96) | getrandbits(96)


class XRayIds(IdGenerator):
    """The same ids for the SDK's provider (spans of OpenTelemetry instrumentations) as the
    factory makes: the X-Ray id generator's rule, without importing its package at start."""

    def generate_span_id(self) -> int:
        return new_span_id()

    def generate_trace_id(self) -> int:
        return new_trace_id(time.time_ns() // _NS_PER_S)


def _unchecked_span_context(trace_id: int, span_id: int, flags: TraceFlags, state: TraceState | None) -> SpanContext:
    """A local SpanContext for valid ids, built as SpanContext.__new__ builds it, minus its checks."""
    return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state or DEFAULT_TRACE_STATE, True))


def _checked_span_context(trace_id: int, span_id: int, flags: TraceFlags, state: TraceState | None) -> SpanContext:
    return SpanContext(trace_id, span_id, False, flags, state)


def _span_context_maker() -> Callable[[int, int, TraceFlags, TraceState | None], SpanContext]:
    probe_state = TraceState([("k", "v")])
    for args in ((1, 2, SAMPLED, None), (2**127 + 5, 2**63 + 7, NOT_SAMPLED, probe_state)):
        built, checked = _unchecked_span_context(*args), _checked_span_context(*args)
        if built != checked or tuple(built) != tuple(checked) or built.is_valid is not True:
            return _checked_span_context  # the API's tuple changed shape: take the safe way
    return _unchecked_span_context


new_span_context = _span_context_maker()
_NOTHING = object()  # what no context holds as its span


class SpanFactory:
    """Creates LightSpans that end into `processor`, sampled as `sampling` says."""

    def __init__(
        self,
        *,
        resource: Resource,
        scope: InstrumentationScope,
        sampling: SamplerChoice,
        processor: SpanProcessor,
        tail: TailBuffer | None = None,
        limits: SpanLimits = DEFAULT_LIMITS,
    ) -> None:
        self.resource = resource
        # Spans under other than the default limits are their own class: the rest pay nothing.
        self._span_type: Callable[..., LightSpan] = (
            LightSpan if limits == DEFAULT_LIMITS else functools.partial(BoundedLightSpan, limits=limits)
        )
        self.scope = scope
        self.sampler = sampling.sampler
        self.processor = processor
        self.tail = tail
        self.trusts_parent = sampling.parent_based
        self.skipped_parent: object = _NOTHING  # see skips()
        self._samples_every_root = sampling.samples_every_root
        ratio = sampling.root_ratio
        # TraceIdRatioBased's own test, made here: asking the SDK's sampler costs ~5 us a root.
        self._root_bound = TraceIdRatioBased.get_bound_for_rate(ratio) if ratio is not None else None
        self._root_state = with_threshold(None, ratio) if ratio is not None and 0.0 < ratio < 1.0 else None

    def skips(self, parent_span: trace_api.Span, parent: SpanContext) -> bool:
        """True when a span under `parent_span` records nothing: its parent was not sampled, the
        sampler honours that, and tail-keep is off or has nothing to hold it with (a local
        parent that is not recording). A remote unsampled parent starts a tail-kept local part.
        The last non-recording parent found so is remembered (`skipped_parent`): all that decided
        it is fixed for such a span, so ``@traced`` skips its next calls under it by identity."""
        if not parent.is_valid or parent.trace_flags.sampled or not self.trusts_parent:
            return False
        skipped = self.tail is None or not (parent.is_remote or parent_span.is_recording())
        if skipped and type(parent_span) is NonRecordingSpan:
            self.skipped_parent = parent_span
        return skipped

    def start(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent_context: context_api.Context | None = None,
        attributes: dict[str, types.AttributeValue] | None = None,
        links: Sequence[Link] = (),
        start_time_ns: int | None = None,
    ) -> trace_api.Span:
        """A new span under the span in `parent_context` (default: the current context)."""
        parent = trace_api.get_current_span(parent_context).get_span_context()
        return self.start_under(parent, parent_context, name, kind, attributes, links, start_time_ns)

    def start_under(
        self,
        parent: SpanContext,
        parent_context: context_api.Context | None,
        name: str,
        kind: SpanKind,
        attributes: dict[str, types.AttributeValue] | None,
        links: Sequence[Link],
        start_time_ns: int | None,
    ) -> trace_api.Span:
        """A new span whose parent span context the caller already looked up."""
        start = start_time_ns if start_time_ns is not None else time.time_ns()
        if parent.is_valid:
            trace_id = parent.trace_id
            trace_state = parent.trace_state
            known = self.trusts_parent and not parent.is_remote
            decision = (Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP) if known else None
        else:
            trace_id = new_trace_id((start if start_time_ns is None else time.time_ns()) // _NS_PER_S)
            trace_state = None
            decision = Decision.RECORD_AND_SAMPLE if self._samples_every_root else None
            if decision is None and self._root_bound is not None:
                decision = (
                    Decision.RECORD_AND_SAMPLE if trace_id & _TRACE_ID_LIMIT < self._root_bound else Decision.DROP
                )
                if decision is Decision.RECORD_AND_SAMPLE:
                    trace_state = self._root_state
        if decision is None:
            result = self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links)
            decision = result.decision
            if result.trace_state is not None:
                trace_state = result.trace_state
            if result.attributes:
                attributes = {**(attributes or {}), **result.attributes}
        span_id = new_span_id()
        on_end = self.processor.on_end
        if decision is Decision.DROP:
            if self.tail is None:
                return NonRecordingSpan(new_span_context(trace_id, span_id, NOT_SAMPLED, trace_state))
            on_end = self.tail.on_end
        flags = SAMPLED if decision is Decision.RECORD_AND_SAMPLE else NOT_SAMPLED
        return self._span_type(
            name,
            new_span_context(trace_id, span_id, flags, trace_state),
            parent if parent.is_valid else None,
            kind,
            start,
            self.resource,
            self.scope,
            on_end,
            dict(attributes) if attributes else None,
            links,
        )
