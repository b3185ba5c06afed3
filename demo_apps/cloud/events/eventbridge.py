"""EventBridge for the local cloud: event buses, rules with event patterns, targets, PutEvents.

``put_events`` turns each entry into an AWS event (version, id, detail-type, source, account,
time, region, resources, detail), matches it against every enabled rule on its bus and hands
each matching rule's targets their payload: the event itself, the part ``InputPath`` selects,
the constant ``Input``, or an ``InputTransformer`` rendering (``InputPathsMap`` +
``InputTemplate``, placeholders quoted or not as in AWS's template). The entry's
``TraceHeader`` (the tracer puts the producer's there) rides along: a Lambda target is an
asynchronous invocation continuing that trace, the event carries it under ``trace-header`` so
the function's span links to the producer, and an SQS target gets it as ``AWSTraceHeader``.
The bus itself records no span, as on AWS: the producer's client span names the bus.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.parser import parse as parse_path

from demo_apps.cloud.aws_json_api import AwsApiError
from demo_apps.cloud.events.event_patterns import InvalidEventPattern, check_pattern, matches
from demo_apps.cloud.events.targets import TargetRouter, UnknownTarget
from tracer import EVENTBRIDGE_CARRIER_KEY

ACCOUNT: Final = "123456789012"
REGION: Final = "us-east-1"
MAX_ENTRIES: Final = 10
MAX_ENTRY_BYTES: Final = 256 * 1024
RECENT_DELIVERIES: Final = 1000
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


@dataclass(frozen=True)
class InputTransformer:
    paths: Mapping[str, str]
    template: str


@dataclass(frozen=True)
class Target:
    id: str
    arn: str
    input_path: str | None = None
    input: str | None = None
    transformer: InputTransformer | None = None


@dataclass
class Rule:
    name: str
    bus: str
    pattern: Mapping[str, Any]
    enabled: bool = True
    targets: dict[str, Target] = field(default_factory=dict)


def _values(document: Any, path: str) -> list[Any]:
    try:
        return [match.value for match in parse_path(path).find(document)]
    except JSONPathError as exc:
        raise AwsApiError("ValidationException", f"invalid path {path!r}: {exc}") from None


def render_template(template: str, values: Mapping[str, Any]) -> str:
    """An InputTemplate with its <placeholders> filled: inside a JSON string a value goes in as
    text, elsewhere as JSON; an unknown placeholder is left as written."""
    out: list[str] = []
    last = 0
    for found in _PLACEHOLDER.finditer(template):
        name = found.group(1)
        if name not in values:
            continue
        out.append(template[last : found.start()])
        value = values[name]
        if _inside_string(template, found.start()):
            text = value if isinstance(value, str) else json.dumps(value)
            out.append(json.dumps(text)[1:-1])
        else:
            out.append(json.dumps(value))
        last = found.end()
    out.append(template[last:])
    return "".join(out)


def _inside_string(template: str, position: int) -> bool:
    quotes = 0
    escaped = False
    for char in template[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quotes += 1
    return quotes % 2 == 1


class EventBridge:
    """Buses (``default`` exists), rules and targets; thread-safe."""

    def __init__(self, router: TargetRouter) -> None:
        self.router = router
        self._buses: set[str] = {"default"}
        self._rules: dict[tuple[str, str], Rule] = {}
        self._lock = threading.Lock()
        # (rule, target arn), the latest deliveries: bounded, as the demo delivers for hours
        self.delivered: deque[tuple[str, str]] = deque(maxlen=RECENT_DELIVERIES)

    def create_event_bus(self, name: str) -> str:
        with self._lock:
            self._buses.add(name)
        return self.bus_arn(name)

    def bus_arn(self, name: str) -> str:
        return f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"

    def _bus(self, name: str | None) -> str:
        bus = (name or "default").rsplit("/", 1)[-1]
        if bus not in self._buses:
            raise AwsApiError("ResourceNotFoundException", f"Event bus {bus} does not exist.")
        return bus

    def put_rule(
        self, name: str, pattern: Mapping[str, Any] | str, bus: str | None = None, enabled: bool = True
    ) -> str:
        document = json.loads(pattern) if isinstance(pattern, str) else pattern
        try:
            check_pattern(document)
        except InvalidEventPattern as exc:
            raise AwsApiError("InvalidEventPatternException", f"Event pattern is not valid. {exc}") from None
        with self._lock:
            key = (self._bus(bus), name)
            previous = self._rules.get(key)
            self._rules[key] = Rule(name, key[0], document, enabled, previous.targets if previous else {})
        return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{key[0]}/{name}"

    def put_targets(self, rule: str, targets: list[Target], bus: str | None = None) -> None:
        for target in targets:
            try:
                self.router.check(target.arn)
            except UnknownTarget as exc:
                raise AwsApiError("ValidationException", f"target {target.id}: {exc}") from None
            if target.input_path is not None:
                _values({}, target.input_path)
        with self._lock:
            found = self._rules.get((self._bus(bus), rule))
            if found is None:
                raise AwsApiError("ResourceNotFoundException", f"Rule {rule} does not exist.")
            found.targets.update({t.id: t for t in targets})

    def put_events(self, entries: list[Mapping[str, Any]], trace_header: str | None = None) -> dict[str, Any]:
        """AWS's PutEvents answer: FailedEntryCount and one result per entry, in order."""
        if not 1 <= len(entries) <= MAX_ENTRIES:
            raise AwsApiError("ValidationException", f"PutEvents takes 1 to {MAX_ENTRIES} entries, not {len(entries)}")
        results = [self._put_event(entry, trace_header) for entry in entries]
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}

    def _put_event(self, entry: Mapping[str, Any], trace_header: str | None) -> dict[str, str]:
        try:
            event, bus = self._event(entry)
        except ValueError as exc:
            return {
                "ErrorCode": "MalformedDetail" if "Detail" in str(exc) else "InvalidArgument",
                "ErrorMessage": str(exc),
            }
        except AwsApiError as exc:
            return {"ErrorCode": exc.code, "ErrorMessage": exc.message}
        header = entry.get("TraceHeader") or trace_header
        with self._lock:
            rules = [r for r in self._rules.values() if r.bus == bus and r.enabled and matches(r.pattern, event)]
            deliveries = [(rule.name, target) for rule in rules for target in rule.targets.values()]
        for rule_name, target in deliveries:
            self.router.deliver(target.arn, self._payload(target, event, header, rule_name), header)
            with self._lock:
                self.delivered.append((rule_name, target.arn))
        return {"EventId": event["id"]}

    def _event(self, entry: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        for required in ("Source", "DetailType", "Detail"):
            if not isinstance(entry.get(required), str) or not entry[required]:
                raise ValueError(f"Parameter {required} is not valid.")
        if len(json.dumps(entry)) > MAX_ENTRY_BYTES:
            raise ValueError("Total size of the entry exceeds 256KB")
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            raise ValueError("Detail is malformed.") from None
        if not isinstance(detail, dict):
            raise ValueError("Detail is malformed: it must be a JSON object.")
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": ACCOUNT,
            "time": entry.get("Time") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": list(entry.get("Resources") or []),
            "detail": detail,
        }
        return event, self._bus(entry.get("EventBusName"))

    def _payload(self, target: Target, event: dict[str, Any], header: str | None, rule: str) -> Any:
        if target.input is not None:
            return json.loads(target.input)
        if target.transformer is not None:
            values: dict[str, Any] = {"aws.events.rule-name": rule, "aws.events.event.json": event}
            for name, path in target.transformer.paths.items():
                found = _values(event, path)
                if found:
                    values[name] = found[0]
            text = render_template(target.transformer.template, values)
            try:
                return json.loads(text)
            except ValueError:
                return text  # a plain-text template is delivered as text
        if target.input_path is not None:
            found = _values(event, target.input_path)
            return found[0] if found else None
        return {**event, EVENTBRIDGE_CARRIER_KEY: header} if header else event
