"""How many requests a head-sampled span stands for, carried the OpenTelemetry way.

OpenTelemetry's probability sampling (spec "TraceState: Probability Sampling") puts the
sampling threshold in the W3C ``tracestate`` as ``ot=th:HEX``: a 56-bit rejection threshold T,
its hex digits with trailing zeros left off, so the probability is (2^56 - T) / 2^56 and each
kept trace stands for 2^56 / (2^56 - T) of them (its adjusted count). A root sampled with a
probability below one gets it; children inherit the trace state (locally and through W3C
propagation to other services), and the exporter turns it into the span attribute
``fluoro.sampling.weight`` that the collector sums to estimate request rates.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from opentelemetry.trace import TraceState

MAX_THRESHOLD: Final = 1 << 56
MAX_WEIGHT: Final = float(1 << 20)  # 1 in a million: past it an estimate is noise, not a rate
OT_KEY: Final = "ot"


def threshold_of(probability: float) -> int:
    """The rejection threshold T for keeping a trace with `probability` (0 < p <= 1)."""
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"a sampling probability is in (0, 1], got {probability!r}")
    return min(MAX_THRESHOLD - 1, round((1.0 - probability) * MAX_THRESHOLD))


def th_value(probability: float) -> str:
    """The ``th`` value for `probability`: 14 hex digits, trailing zeros left off ("0" for 1)."""
    digits = f"{threshold_of(probability):014x}".rstrip("0")
    return digits or "0"


def with_threshold(state: TraceState | None, probability: float) -> TraceState:
    """`state` with its ``ot`` entry's ``th`` set for `probability`, other sub-keys kept."""
    entry = f"th:{th_value(probability)}"
    old = state.get(OT_KEY) if state is not None else None
    if old:
        rest = [part for part in old.split(";") if part and not part.startswith("th:")]
        entry = ";".join([entry, *rest])
    if state is None:
        return TraceState([(OT_KEY, entry)])
    return state.update(OT_KEY, entry) if OT_KEY in state else state.add(OT_KEY, entry)


@lru_cache(maxsize=256)
def weight_of_ot(ot_value: str) -> float | None:
    """The adjusted count an ``ot`` entry's ``th`` gives, or None when it has no usable one."""
    for part in ot_value.split(";"):
        key, _, value = part.partition(":")
        if key != "th":
            continue
        if not 1 <= len(value) <= 14 or any(c not in "0123456789abcdef" for c in value):
            return None
        threshold = int(value.ljust(14, "0"), 16)
        return min(MAX_WEIGHT, MAX_THRESHOLD / (MAX_THRESHOLD - threshold))
    return None


def weight_of(state: TraceState | None) -> float | None:
    """The adjusted count a span's trace state says it stands for (None: not stated)."""
    if not state:
        return None
    ot_value = state.get(OT_KEY)
    return weight_of_ot(ot_value) if ot_value else None
