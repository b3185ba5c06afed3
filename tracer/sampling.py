"""The samplers OTEL_TRACES_SAMPLER names, and what each lets the span factory decide alone.

``xray`` (and ``parentbased_xray``) read X-Ray's local sampling rules: tracer/xray_sampling_rules.py,
imported only then.
"""

from __future__ import annotations

from typing import NamedTuple

from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased


class SamplingRulesError(ValueError):
    """The rules document is not a valid X-Ray sampling rules document."""


class SamplerChoice(NamedTuple):
    """A built sampler, and which decisions are known without asking it. (A NamedTuple, not a
    frozen dataclass: building a dataclass's methods costs ~0.5 ms of every cold start.)"""

    sampler: Sampler
    parent_based: bool  # a local parent's sampled flag settles the child's decision
    samples_every_root: bool = False  # always_on, parentbased_always_on
    # When a root's decision is TraceIdRatioBased's at this ratio (always_off: 0): the factory
    # decides roots itself, and a root kept below 1 states its probability (sampling_weight.py).
    root_ratio: float | None = None


_ROOT_RATIOS = {"always_on": 1.0, "always_off": 0.0}


def _root_sampler(name: str, ratio: float) -> Sampler:
    return {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF}.get(name) or TraceIdRatioBased(ratio)


def build_sampler(name: str, arg: str | None) -> SamplerChoice:
    """The sampler OTEL_TRACES_SAMPLER names; ``xray`` reads rules from the file in `arg`."""
    ratio = 1.0
    if name.endswith("traceidratio"):
        try:
            ratio = float(arg) if arg else 1.0
        except ValueError as exc:
            raise SamplingRulesError(f"OTEL_TRACES_SAMPLER_ARG must be a ratio, got {arg!r}") from exc
    root_name = name.removeprefix("parentbased_")
    if root_name in ("always_on", "always_off", "traceidratio"):
        root = _root_sampler(root_name, ratio)
        parent_based = name.startswith("parentbased_")
        return SamplerChoice(
            ParentBased(root) if parent_based else root,
            parent_based=parent_based,
            samples_every_root=root_name == "always_on",
            root_ratio=_ROOT_RATIOS.get(root_name, getattr(root, "rate", None)),
        )
    if name in ("xray", "parentbased_xray"):
        from tracer.xray_sampling_rules import XRayRulesSampler

        rules = XRayRulesSampler.from_file(arg) if arg else XRayRulesSampler()
        return SamplerChoice(ParentBased(rules), parent_based=True)
    raise SamplingRulesError(f"unknown sampler {name!r}")


def wrap_custom_sampler(sampler: Sampler) -> SamplerChoice:
    """A user-supplied sampler: trusted for sampled parents only if it is ParentBased; a ratio
    sampler's (or ParentBased one's root's) ratio known."""
    root = getattr(sampler, "_root", sampler) if isinstance(sampler, ParentBased) else sampler
    ratio = root.rate if isinstance(root, TraceIdRatioBased) else None
    return SamplerChoice(sampler, parent_based=isinstance(sampler, ParentBased), root_ratio=ratio)
