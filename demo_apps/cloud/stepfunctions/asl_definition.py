"""Checking an Amazon States Language definition at CreateStateMachine, as AWS does.

Every fault is reported with its place in the document (``/States/Assess/Retry/0/ErrorEquals``):
unknown or missing fields by state type, ``StartAt`` and every ``Next``/``Default`` naming a
state that exists, each state either going on or ending (``Next`` xor ``End``, Choice, Succeed,
Fail), well-formed paths, choice rules, retriers and catchers, and — recursively — Parallel
branches and Map processors. Task resources must be ones the local cloud runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from demo_apps.cloud.stepfunctions.asl_choice import check_rule
from demo_apps.cloud.stepfunctions.asl_paths import PathError, check_path, reference_steps
from demo_apps.cloud.stepfunctions.asl_task import PATTERNS, split_pattern

STATE_TYPES: Final = frozenset({"Pass", "Task", "Choice", "Wait", "Parallel", "Map", "Succeed", "Fail"})
_PATH_FIELDS: Final = (
    "InputPath",
    "OutputPath",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
)
_COMMON: Final = {"Type", "Comment", "InputPath", "OutputPath", "Next", "End"}
_ALLOWED: Final[dict[str, set[str]]] = {
    "Pass": _COMMON | {"Result", "ResultPath", "Parameters"},
    "Task": _COMMON
    | {
        "Resource",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
        "TimeoutSeconds",
        "HeartbeatSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSecondsPath",
    },
    "Choice": {"Type", "Comment", "InputPath", "OutputPath", "Choices", "Default"},
    "Wait": _COMMON | {"Seconds", "Timestamp", "SecondsPath", "TimestampPath"},
    "Parallel": _COMMON | {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Map": _COMMON
    | {
        "Iterator",
        "ItemProcessor",
        "ItemsPath",
        "ItemSelector",
        "Parameters",
        "MaxConcurrency",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
    },
    "Succeed": {"Type", "Comment", "InputPath", "OutputPath"},
    "Fail": {"Type", "Comment", "Error", "Cause"},
}


class InvalidDefinition(ValueError):
    """InvalidDefinition: what is wrong and where."""


def check_definition(definition: Any, where: str = "") -> None:
    """Raise InvalidDefinition with the path of the first fault."""
    if not isinstance(definition, Mapping):
        raise InvalidDefinition(f"{where or '/'}: the definition must be a JSON object")
    states = definition.get("States")
    if not isinstance(states, Mapping) or not states:
        raise InvalidDefinition(f"{where}/States: a definition needs at least one state")
    if definition.get("StartAt") not in states:
        raise InvalidDefinition(f"{where}/StartAt: {definition.get('StartAt')!r} is not a state of this machine")
    for name, state in states.items():
        _check_state(state, set(states), f"{where}/States/{name}")


def _check_state(state: Any, names: set[str], where: str) -> None:
    if not isinstance(state, Mapping):
        raise InvalidDefinition(f"{where}: a state must be a JSON object")
    kind = state.get("Type")
    if kind not in STATE_TYPES:
        raise InvalidDefinition(f"{where}/Type: {kind!r} is not a state type ({', '.join(sorted(STATE_TYPES))})")
    unknown = sorted(set(state) - _ALLOWED[kind])
    if unknown:
        raise InvalidDefinition(f"{where}/{unknown[0]}: not a field of a {kind} state")
    _check_transition(state, kind, names, where)
    for field in _PATH_FIELDS:
        if isinstance(state.get(field), str):
            _path(state[field], f"{where}/{field}")
    if isinstance(state.get("ResultPath"), str):
        try:
            reference_steps(state["ResultPath"])
        except PathError as exc:
            raise InvalidDefinition(f"{where}/ResultPath: {exc}") from None
    _check_kind(state, kind, names, where)
    for index, retrier in enumerate(state.get("Retry") or []):
        _check_retrier(retrier, f"{where}/Retry/{index}")
    for index, catcher in enumerate(state.get("Catch") or []):
        _check_catcher(catcher, names, f"{where}/Catch/{index}")


def _check_transition(state: Mapping[str, Any], kind: str, names: set[str], where: str) -> None:
    if kind in ("Choice", "Succeed", "Fail"):
        return
    has_next, ends = "Next" in state, state.get("End") is True
    if has_next == ends:
        raise InvalidDefinition(f"{where}: a {kind} state needs exactly one of Next and End: true")
    if has_next and state["Next"] not in names:
        raise InvalidDefinition(f"{where}/Next: {state['Next']!r} is not a state of this machine")


def _check_task(state: Mapping[str, Any], where: str) -> None:
    resource = state.get("Resource")
    if not isinstance(resource, str):
        raise InvalidDefinition(f"{where}/Resource: a Task needs a Resource")
    base, pattern = split_pattern(resource)
    offered = ("",) if base.startswith("arn:aws:lambda:") else PATTERNS.get(base)
    if offered is None:
        raise InvalidDefinition(f"{where}/Resource: {resource!r} is not a resource the local cloud runs")
    if pattern not in offered:
        raise InvalidDefinition(f"{where}/Resource: {base} does not offer the {pattern} integration pattern")
    for name in ("TimeoutSeconds", "HeartbeatSeconds"):
        value = state.get(name)
        if name in state and name + "Path" in state:
            raise InvalidDefinition(f"{where}: {name} and {name}Path cannot both be given")
        if name in state and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InvalidDefinition(f"{where}/{name}: {value!r} is not a positive integer")
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
        raise InvalidDefinition(f"{where}/HeartbeatSeconds: {heartbeat} must be less than TimeoutSeconds {timeout}")


def _check_kind(state: Mapping[str, Any], kind: str, names: set[str], where: str) -> None:
    if kind == "Task":
        _check_task(state, where)
    elif kind == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise InvalidDefinition(f"{where}/Choices: a Choice state needs a non-empty list of rules")
        for index, rule in enumerate(choices):
            try:
                check_rule(rule, f"{where}/Choices/{index}")
            except ValueError as exc:
                raise InvalidDefinition(str(exc)) from None
            if rule["Next"] not in names:
                raise InvalidDefinition(f"{where}/Choices/{index}/Next: {rule['Next']!r} is not a state")
        if "Default" in state and state["Default"] not in names:
            raise InvalidDefinition(f"{where}/Default: {state['Default']!r} is not a state of this machine")
    elif kind == "Wait":
        waits = [f for f in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if f in state]
        if len(waits) != 1:
            raise InvalidDefinition(f"{where}: a Wait state needs exactly one of Seconds, Timestamp and their Paths")
    elif kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise InvalidDefinition(f"{where}/Branches: a Parallel state needs at least one branch")
        for index, branch in enumerate(branches):
            check_definition(branch, f"{where}/Branches/{index}")
    elif kind == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is None:
            raise InvalidDefinition(f"{where}/ItemProcessor: a Map state needs an ItemProcessor (or Iterator)")
        check_definition(processor, f"{where}/{'ItemProcessor' if 'ItemProcessor' in state else 'Iterator'}")
        concurrency = state.get("MaxConcurrency", 0)
        if not isinstance(concurrency, int) or concurrency < 0:
            raise InvalidDefinition(f"{where}/MaxConcurrency: must be a non-negative integer")


def _check_retrier(retrier: Any, where: str) -> None:
    _error_equals(retrier, where)
    for field, minimum in (("IntervalSeconds", 1), ("MaxAttempts", 0), ("BackoffRate", 1)):
        value = retrier.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum):
            raise InvalidDefinition(f"{where}/{field}: must be a number of at least {minimum}")


def _check_catcher(catcher: Any, names: set[str], where: str) -> None:
    _error_equals(catcher, where)
    if catcher.get("Next") not in names:
        raise InvalidDefinition(f"{where}/Next: {catcher.get('Next')!r} is not a state of this machine")


def _error_equals(document: Any, where: str) -> None:
    errors = document.get("ErrorEquals") if isinstance(document, Mapping) else None
    if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
        raise InvalidDefinition(f"{where}/ErrorEquals: needs a non-empty list of error names")
    if "States.ALL" in errors and len(errors) > 1:
        raise InvalidDefinition(f"{where}/ErrorEquals: States.ALL must appear alone")


def _path(path: str, where: str) -> None:
    try:
        check_path(path)
    except PathError as exc:
        raise InvalidDefinition(f"{where}: {exc}") from None
