"""X-Ray's local sampling rules as an OpenTelemetry sampler (OTEL_TRACES_SAMPLER=xray).

The rules document is X-Ray's (version 1 or 2)::

    {"version": 2,
     "rules": [{"description": "health", "host": "*", "http_method": "GET",
                "url_path": "/ping", "fixed_target": 0, "rate": 0.0}],
     "default": {"fixed_target": 1, "rate": 0.05}}

The first rule that matches, in file order, decides; each rule keeps a reservoir of
``fixed_target`` traces per second and samples ``rate`` of the rest. ``*`` and ``?`` are the
only wildcards, matched case-insensitively as the X-Ray SDKs do. X-Ray's rules decide for
roots only, so the sampler is always wrapped parent-based. A module of its own, imported only
when rules are asked for: most processes sample by the OTEL_TRACES_SAMPLER names alone.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.util.types import Attributes

from tracer import semconv
from tracer.sampling import SamplingRulesError
from tracer.sampling_weight import with_threshold

DEFAULT_RULES: Mapping[str, Any] = {"version": 2, "rules": [], "default": {"fixed_target": 1, "rate": 0.05}}


def wildcard_pattern(text: str) -> re.Pattern[str]:
    """X-Ray's wildcard: ``*`` any run of characters, ``?`` exactly one; nothing else special."""
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in text or "*")
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


class Reservoir:
    """At most `per_second` admissions in each wall-clock second."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._second = -1
        self._taken = 0
        self._lock = threading.Lock()

    def take(self, now_s: float) -> bool:
        if self.per_second <= 0:
            return False
        second = int(now_s)
        with self._lock:
            if second != self._second:
                self._second, self._taken = second, 0
            if self._taken < self.per_second:
                self._taken += 1
                return True
            return False


@dataclass
class SamplingRule:
    """One rule: what it matches and how much it keeps."""

    description: str
    host: re.Pattern[str]
    http_method: re.Pattern[str]
    url_path: re.Pattern[str]
    rate: float
    reservoir: Reservoir = field(repr=False)

    def matches(self, host: str, method: str, path: str) -> bool:
        return bool(self.host.fullmatch(host) and self.http_method.fullmatch(method) and self.url_path.fullmatch(path))


def _number(rule: Mapping[str, Any], key: str, where: str) -> float:
    value = rule.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SamplingRulesError(f"{where}: '{key}' must be a non-negative number, got {value!r}")
    return float(value)


def _rule(raw: Any, where: str, *, default: bool) -> SamplingRule:
    if not isinstance(raw, Mapping):
        raise SamplingRulesError(f"{where}: a rule must be an object")
    rate = _number(raw, "rate", where)
    if rate > 1:
        raise SamplingRulesError(f"{where}: 'rate' must be between 0 and 1, got {rate}")
    fixed_target = int(_number(raw, "fixed_target", where))
    if default and set(raw) - {"fixed_target", "rate"}:
        raise SamplingRulesError(f"{where}: the default rule takes only fixed_target and rate")
    return SamplingRule(
        description=str(raw.get("description", "default" if default else "")),
        host=wildcard_pattern(str(raw.get("host", "*"))),
        http_method=wildcard_pattern(str(raw.get("http_method", "*"))),
        url_path=wildcard_pattern(str(raw.get("url_path", "*"))),
        rate=rate,
        reservoir=Reservoir(fixed_target),
    )


def parse_rules(document: Mapping[str, Any]) -> tuple[list[SamplingRule], SamplingRule]:
    """The rules in file order and the default rule, or SamplingRulesError saying what is wrong."""
    if document.get("version") not in (1, 2):
        raise SamplingRulesError("'version' must be 1 or 2")
    if "default" not in document:
        raise SamplingRulesError("a 'default' rule is required")
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        raise SamplingRulesError("'rules' must be a list")
    rules = [_rule(r, f"rules[{i}]", default=False) for i, r in enumerate(raw_rules)]
    return rules, _rule(document["default"], "default", default=True)


def _text(attributes: Attributes, *keys: str) -> str:
    for key in keys:
        value = (attributes or {}).get(key)
        if isinstance(value, str):
            return value
    return ""


class XRayRulesSampler(Sampler):
    """Decides for a root span by the first matching X-Ray rule (reservoir, then rate)."""

    def __init__(self, document: Mapping[str, Any] = DEFAULT_RULES, *, rng: random.Random | None = None) -> None:
        self.rules, self.default = parse_rules(document)
        self._rng = rng or random.Random()

    @classmethod
    def from_file(cls, path: str | Path) -> XRayRulesSampler:
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SamplingRulesError(f"cannot read sampling rules {path}: {exc}") from exc
        if not isinstance(document, dict):
            raise SamplingRulesError("the rules document must be a JSON object")
        return cls(document)

    def rule_for(self, attributes: Attributes) -> SamplingRule:
        host = _text(attributes, semconv.SERVER_ADDRESS, "http.host")
        method = _text(attributes, semconv.HTTP_REQUEST_METHOD, semconv.HTTP_METHOD_OLD)
        path = _text(attributes, semconv.URL_PATH, "http.target")
        for rule in self.rules:
            if rule.matches(host, method, path):
                return rule
        return self.default

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        rule = self.rule_for(attributes)
        parent_state = get_current_span(parent_context).get_span_context().trace_state
        if rule.reservoir.take(time.time()):
            # The reservoir's admission stands for itself alone (weight 1); the rest of the
            # second's requests are each kept with probability `rate`, so a kept one stands for
            # 1/rate of them: together an unbiased estimate of the requests.
            return SamplingResult(Decision.RECORD_AND_SAMPLE, None, parent_state)
        if self._rng.random() < rule.rate:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, None, with_threshold(parent_state, rule.rate))
        return SamplingResult(Decision.DROP, None, parent_state)

    def get_description(self) -> str:
        return f"XRayRulesSampler{{rules={len(self.rules)}}}"
