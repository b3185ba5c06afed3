"""The service map's hops of spans held in memory: the linker's roles, one span at a time.

The collector resolves hops at ingest, vectorized over each run of spans
(collector/service_map/): ``entry`` (a span whose parent is on another node, or that has none),
``inferred`` (a client span's guess at what it called, given up when an instrumented callee
on another node turns up, unless a queue, stream, bus or bucket stays between them), ``link``
(a consumer linked to the producer of its message) and ``init``. This applies the same rules
to a handful of spans in memory, for ``edge()`` filters and ``assert_edge`` in the tracer's
pytest plugin; a test holds the two to the same answers on the same spans. The node types
below are the linker's too (collector/service_map/roles.py imports them from here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from spanlang.held_span import HeldSpan

ASYNC_TYPES: Final = (
    "AWS::SQS::Queue",
    "AWS::Kinesis::Stream",
    "AWS::Events::EventBus",
    "AWS::SNS::Topic",
    "AWS::StepFunctions::StateMachine",
    "queue",
)
# Targets that stay between a producer and the consumer its call triggered: the async ones,
# and S3 buckets, whose event notifications carry the uploader's trace to the function.
VIA_TYPES: Final = (*ASYNC_TYPES, "AWS::S3::Bucket")

Role = Literal["entry", "inferred", "link", "init"]


@dataclass(frozen=True, slots=True)
class Hop:
    """One call the map draws: into `span`'s node (or, inferred, from it to its target)."""

    span: HeldSpan
    role: Role
    caller: str | None
    caller_type: str | None
    callee: str
    callee_type: str | None


def other_node(child: HeldSpan, partner: HeldSpan) -> bool:
    """The child runs on another node than its partner: another service, or other origins."""
    origins_differ = child.origin is not None and partner.origin is not None and child.origin != partner.origin
    return child.service != partner.service or origins_differ


def via_target(child: HeldSpan, partner: HeldSpan) -> bool:
    """The partner called a queue, stream, bus or bucket that stays between it and the child
    (unless that target is the child's own node, as X-Ray's AWS::Lambda segment is)."""
    own_node = partner.target_name == child.service and partner.target_type == child.origin
    return partner.target_type in VIA_TYPES and not own_node


def _pair(child: HeldSpan, partner: HeldSpan, role: Role) -> Hop:
    via = via_target(child, partner)
    return Hop(
        child,
        role,
        partner.target_name if via else partner.service,
        partner.target_type if via else partner.origin,
        child.service,
        child.origin,
    )


def hops(spans: Sequence[HeldSpan]) -> list[Hop]:
    """Every hop of `spans` (all the spans there are: a child whose parent is not among them
    entered from outside, as the collector decides once its parent wait has passed)."""
    by_key = {(s.trace_id, s.span_id): s for s in spans}
    found: list[Hop] = []
    superseded: set[tuple[str, str]] = set()
    for span in spans:
        if span.is_init:
            found.append(Hop(span, "init", None, None, span.service, span.origin))
            continue
        parent = by_key.get((span.trace_id, span.parent_span_id)) if span.parent_span_id else None
        if parent is None:
            found.append(Hop(span, "entry", None, None, span.service, span.origin))
        elif other_node(span, parent):
            found.append(_pair(span, parent, "entry"))
            if parent.target_type is not None and not via_target(span, parent):
                superseded.add((parent.trace_id, parent.span_id))
        for linked in (by_key.get(key) for key in span.links):
            if linked is not None:
                found.append(_pair(span, linked, "link"))
    for span in spans:
        guessed = span.target_type is not None and span.target_name is not None
        if guessed and (span.trace_id, span.span_id) not in superseded:
            found.append(Hop(span, "inferred", span.service, span.origin, span.target_name, span.target_type))  # type: ignore[arg-type]
    return found


def edges(found: Iterable[Hop]) -> set[tuple[str | None, str]]:
    """The (caller, callee) names of the hops the map draws between two nodes."""
    return {(h.caller, h.callee) for h in found if h.role in ("entry", "inferred", "link") and h.caller is not None}
