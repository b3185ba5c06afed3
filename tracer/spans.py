"""Starting Fluoro's spans: sampling, ids and parenting, the OpenTelemetry SDK's rules on a fast path.

Under a sampled parent a parent-based sampler's answer is known without asking it, so the
sampler is only consulted for roots and remote parents; ids come from the X-Ray id generator,
so a trace id is also a valid X-Ray trace id (its first 32 bits are the start time).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util import types

from tracer.lightspan import LightSpan

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


class SpanFactory:
    """Creates LightSpans that end into `processor`, sampled by `sampler`."""

    def __init__(
        self,
        *,
        resource: Resource,
        scope: InstrumentationScope,
        sampler: Sampler,
        processor: SpanProcessor,
        trust_sampled_local_parent: bool,
    ) -> None:
        self.resource = resource
        self.scope = scope
        self.sampler = sampler
        self.processor = processor
        self.ids = AwsXRayIdGenerator()
        # True when the sampler is parent-based with ALWAYS_ON for a sampled local parent:
        # then a child of a local sampled span is sampled without calling the sampler.
        self.trusts_parent = trust_sampled_local_parent

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
        start = start_time_ns if start_time_ns is not None else time.time_ns()
        if parent.is_valid and not parent.is_remote and self.trusts_parent:
            if not parent.trace_flags.sampled:
                return NonRecordingSpan(SpanContext(parent.trace_id, self.ids.generate_span_id(), False, NOT_SAMPLED))
            return self._child_of_sampled(name, kind, parent, attributes, links, start)
        trace_id = parent.trace_id if parent.is_valid else self.ids.generate_trace_id()
        result = self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links)
        trace_state = result.trace_state if result.trace_state is not None else parent.trace_state
        if result.attributes:
            attributes = {**(attributes or {}), **result.attributes}
        if result.decision is Decision.DROP:
            return NonRecordingSpan(SpanContext(trace_id, self.ids.generate_span_id(), False, NOT_SAMPLED, trace_state))
        flags = SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else NOT_SAMPLED
        context = SpanContext(trace_id, self.ids.generate_span_id(), False, flags, trace_state)
        return LightSpan(
            name,
            context,
            parent if parent.is_valid else None,
            kind,
            start,
            self.resource,
            self.scope,
            self.processor.on_end,
            dict(attributes) if attributes else None,
            links,
        )

    def _child_of_sampled(
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext,
        attributes: dict[str, types.AttributeValue] | None,
        links: Sequence[Link],
        start_time_ns: int,
    ) -> LightSpan:
        context = SpanContext(parent.trace_id, self.ids.generate_span_id(), False, SAMPLED, parent.trace_state)
        return LightSpan(
            name,
            context,
            parent,
            kind,
            start_time_ns,
            self.resource,
            self.scope,
            self.processor.on_end,
            dict(attributes) if attributes else None,
            links,
        )
