"""Starting Fluoro's spans: sampling, ids and parenting, the OpenTelemetry SDK's rules on a fast path.

The sampler is consulted only when its answer is not already known: a parent-based sampler
always samples the child of a local sampled parent, and ``always_on`` / ``parentbased_always_on``
always sample a root. Ids come from the X-Ray id generator, so a trace id is also a valid X-Ray
trace id (its first 32 bits are the start time). With tail-keep (tracer/tail_keep.py), a span head
sampling drops is still recorded, unsampled, and ends into the tail buffer instead; a root kept
by a fixed ratio below one carries that probability in its trace state (sampling_weight.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util import types

from tracer.lightspan import LightSpan
from tracer.sampling import SamplerChoice
from tracer.sampling_weight import with_threshold
from tracer.tail_keep import TailBuffer

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_TRACE_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT


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
    ) -> None:
        self.resource = resource
        self.scope = scope
        self.sampler = sampling.sampler
        self.processor = processor
        self.tail = tail
        self.ids = AwsXRayIdGenerator()
        self.trusts_parent = sampling.parent_based
        self._samples_every_root = sampling.samples_every_root
        ratio = sampling.root_ratio
        # TraceIdRatioBased's own test, made here: asking the SDK's sampler costs ~5 us a root.
        self._root_bound = TraceIdRatioBased.get_bound_for_rate(ratio) if ratio is not None else None
        self._root_state = with_threshold(None, ratio) if ratio is not None and 0.0 < ratio < 1.0 else None

    def skips(self, parent_span: trace_api.Span, parent: SpanContext) -> bool:
        """True when a span under `parent_span` records nothing: its parent was not sampled, the
        sampler honours that, and tail-keep is off or has nothing to hold it with (a local
        parent that is not recording). A remote unsampled parent starts a tail-kept local part."""
        if not parent.is_valid or parent.trace_flags.sampled or not self.trusts_parent:
            return False
        return self.tail is None or not (parent.is_remote or parent_span.is_recording())

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
            trace_id = self.ids.generate_trace_id()
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
        span_id = self.ids.generate_span_id()
        on_end = self.processor.on_end
        if decision is Decision.DROP:
            if self.tail is None:
                return NonRecordingSpan(SpanContext(trace_id, span_id, False, NOT_SAMPLED, trace_state))
            on_end = self.tail.on_end
        flags = SAMPLED if decision is Decision.RECORD_AND_SAMPLE else NOT_SAMPLED
        return LightSpan(
            name,
            SpanContext(trace_id, span_id, False, flags, trace_state),
            parent if parent.is_valid else None,
            kind,
            start,
            self.resource,
            self.scope,
            on_end,
            dict(attributes) if attributes else None,
            links,
        )
