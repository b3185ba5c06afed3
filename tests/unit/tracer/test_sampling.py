"""X-Ray local sampling rules as a parent-based OTel sampler."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased

from tracer import semconv
from tracer.runtime import Tracing
from tracer.sampling import SamplingRulesError, build_sampler
from tracer.settings import Settings
from tracer.tail_keep import TailKeepSettings
from tracer.xray_sampling_rules import XRayRulesSampler, wildcard_pattern

RULES: dict[str, Any] = {
    "version": 2,
    "rules": [
        {"description": "health", "host": "*", "http_method": "GET", "url_path": "/ping", "fixed_target": 0, "rate": 0},
        {
            "description": "moves",
            "host": "*",
            "http_method": "*",
            "url_path": "/api/move/*",
            "fixed_target": 2,
            "rate": 0,
        },
        {
            "description": "all api",
            "host": "*.example.com",
            "http_method": "*",
            "url_path": "/api/*",
            "fixed_target": 0,
            "rate": 1,
        },
    ],
    "default": {"fixed_target": 1, "rate": 0},
}


def http(method: str, path: str, host: str = "shop.example.com") -> dict[str, str]:
    return {semconv.HTTP_REQUEST_METHOD: method, semconv.URL_PATH: path, semconv.SERVER_ADDRESS: host}


def decide(sampler: XRayRulesSampler, attributes: dict[str, str]) -> bool:
    result = sampler.should_sample(None, 1, "span", attributes=attributes)
    return result.decision is Decision.RECORD_AND_SAMPLE


def test_wildcards() -> None:
    assert wildcard_pattern("/api/*").fullmatch("/api/move/up")
    assert wildcard_pattern("/a?c").fullmatch("/abc")
    assert not wildcard_pattern("/a?c").fullmatch("/abbc")
    assert wildcard_pattern("*.EXAMPLE.com").fullmatch("shop.example.COM")
    assert not wildcard_pattern("/a.c").fullmatch("/abc")  # only * and ? are special


def test_first_matching_rule_in_file_order_decides() -> None:
    sampler = XRayRulesSampler(RULES)
    assert not decide(sampler, http("GET", "/ping"))  # rule 1 beats rule 3 which would keep it
    assert decide(sampler, http("POST", "/api/orders"))  # rule 3, rate 1
    assert sampler.rule_for(http("GET", "/api/move/up")).description == "moves"
    assert sampler.rule_for(http("GET", "/other", host="elsewhere")) is sampler.default


def test_reservoir_admits_fixed_target_per_second_then_rate() -> None:
    sampler = XRayRulesSampler(RULES)
    kept = [decide(sampler, http("GET", "/api/move/left")) for _ in range(10)]
    # Two per second from the reservoir, rate 0 for the rest (unless the second ticked over).
    assert 2 <= sum(kept) <= 4
    assert kept[:2] == [True, True]


def test_default_rate_is_applied_with_randomness() -> None:
    document = {"version": 2, "rules": [], "default": {"fixed_target": 0, "rate": 0.25}}
    sampler = XRayRulesSampler(document, rng=random.Random(7))
    kept = sum(decide(sampler, {}) for _ in range(4000))
    assert 850 <= kept <= 1150


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": 3, "default": {"fixed_target": 1, "rate": 0.1}}, "version"),
        ({"version": 2}, "default"),
        ({"version": 2, "default": {"fixed_target": 1, "rate": 2}}, "between 0 and 1"),
        ({"version": 2, "default": {"fixed_target": -1, "rate": 0.1}}, "fixed_target"),
        ({"version": 2, "default": {"fixed_target": 1, "rate": 0.1, "url_path": "/x"}}, "only fixed_target"),
        ({"version": 2, "rules": [{"rate": 0.1}], "default": {"fixed_target": 1, "rate": 0.1}}, "rules[0]"),
    ],
)
def test_invalid_documents_say_what_is_wrong(document: dict[str, Any], message: str) -> None:
    with pytest.raises(SamplingRulesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        XRayRulesSampler(document)


def test_rules_from_file_via_environment_names(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES))
    choice = build_sampler("xray", str(path))
    assert isinstance(choice.sampler, ParentBased) and choice.parent_based
    with pytest.raises(SamplingRulesError, match="cannot read"):
        build_sampler("xray", str(tmp_path / "missing.json"))
    with pytest.raises(SamplingRulesError, match="unknown sampler"):
        build_sampler("sometimes", None)
    assert build_sampler("parentbased_always_on", None).samples_every_root
    assert not build_sampler("traceidratio", "0.5").parent_based


def test_rules_decide_roots_and_parents_decide_children(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"version": 2, "rules": [], "default": {"fixed_target": 0, "rate": 0}}))
    tracing = Tracing(Settings(sampler="xray", sampler_arg=str(path)), exporter=InMemorySpanExporter(), batch=False)
    root = tracing.spans.start("root")
    assert not root.get_span_context().trace_flags.sampled  # rate 0, no reservoir (tail-keep records it)
    sampled_parent = trace_api.NonRecordingSpan(
        trace_api.SpanContext(0xABC, 0xDEF, True, trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED))
    )
    child = tracing.spans.start("child", parent_context=trace_api.set_span_in_context(sampled_parent))
    assert child.is_recording() and child.get_span_context().trace_id == 0xABC
    child.end()
    assert not tracing.spans.start("again", parent_context=context_api.Context()).get_span_context().trace_flags.sampled
    tracing.shutdown()
    untailed = Settings(sampler="xray", sampler_arg=str(path), tail_keep=TailKeepSettings(enabled=False))
    tracing = Tracing(untailed, exporter=InMemorySpanExporter(), batch=False)
    assert not tracing.spans.start("root").is_recording()  # without tail-keep, nothing is recorded
    tracing.shutdown()
