"""How a trace was kept: by head sampling (and at what rate), or by tail-keep (and why).

Each process decides for its own part of a trace: the tracer's head sampler for the whole trace
at its root (downstream services follow it), tail-keep for a local part head sampling dropped
(tracer/tail_keep.py). The spans say which (``fluoro.sampling`` and ``fluoro.sampling.weight``);
this reads it back per service, for the trace view and the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from spanlang.derive import MAX_SAMPLING_WEIGHT
from tracer import semconv

KeptBy = Literal["head", "tail", "unstated"]


class SpanOfService(Protocol):
    """A span as the trace views hold it: its service and attributes."""

    @property
    def service(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class KeptPart:
    """A service's part of a trace and how it was kept. ``how``: head sampling, tail-keep, or
    not stated (an SDK that is not Fluoro's, or the X-Ray daemon protocol); ``reason``: why
    tail-keep kept it (error, throttle, cold_start, slow); ``one_in``: the head sampling rate's
    inverse when the spans state one (100 for 1%)."""

    service: str
    how: KeptBy
    reason: str | None
    one_in: float | None
    spans: int


def _part_of(span: SpanOfService) -> tuple[KeptBy, str | None, float | None]:
    sampling = span.attributes.get(semconv.SAMPLING)
    if isinstance(sampling, str) and sampling.startswith("tail:"):
        return "tail", sampling.removeprefix("tail:")[:40], None
    weight = span.attributes.get(semconv.SAMPLING_WEIGHT)
    one_in = float(weight) if isinstance(weight, (int, float)) and 1.0 < weight <= MAX_SAMPLING_WEIGHT else None
    if sampling == "head":
        return "head", None, one_in
    return "unstated", None, None


def kept_parts(spans: Sequence[SpanOfService]) -> tuple[KeptPart, ...]:
    """Per service (in the order its spans first appear) and way of keeping, its spans' count."""
    counts: dict[tuple[str, KeptBy, str | None, float | None], int] = {}
    for span in spans:
        key = (span.service, *_part_of(span))
        counts[key] = counts.get(key, 0) + 1
    return tuple(KeptPart(service, how, reason, one_in, n) for (service, how, reason, one_in), n in counts.items())
