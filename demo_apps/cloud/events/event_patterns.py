"""EventBridge event patterns: checking one at PutRule and matching events against it.

As AWS documents them: a pattern is a JSON object mirroring the event's structure; every leaf
is an array of matchers, any of which may match (OR), and every field must match (AND). When
the event's value is an array, a leaf matches if any element does. Matchers: exact values
(string, number — 5 matches 5.0 — boolean, null), ``prefix``, ``suffix`` (each also as
``{"equals-ignore-case": …}``), ``equals-ignore-case``, ``wildcard`` (``*``), ``anything-but``
(a value, a list, or a prefix/suffix/equals-ignore-case/wildcard), ``numeric`` (up to two
comparisons), ``exists`` and ``cidr``; ``$or`` takes a list of sub-patterns.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

_NUMERIC: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MISSING: Final = object()
_STRING_OPS: Final = ("prefix", "suffix", "equals-ignore-case", "wildcard")


class InvalidEventPattern(ValueError):
    """InvalidEventPatternException, naming where in the pattern the fault is."""


def check_pattern(pattern: Any, path: str = "$") -> None:
    """Raise InvalidEventPattern (with the path) unless `pattern` is a well-formed pattern."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise InvalidEventPattern(f"{path}: a pattern must be a non-empty JSON object")
    for key, value in pattern.items():
        where = f"{path}.{key}"
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise InvalidEventPattern(f"{where}: $or takes a list of at least two patterns")
            for index, branch in enumerate(value):
                check_pattern(branch, f"{where}[{index}]")
        elif isinstance(value, Mapping):
            check_pattern(value, where)
        elif isinstance(value, list) and value:
            for index, matcher in enumerate(value):
                _check_matcher(matcher, f"{where}[{index}]")
        else:
            raise InvalidEventPattern(f"{where}: a leaf must be a non-empty array of values or matchers")


def _check_matcher(matcher: Any, where: str) -> None:
    if not isinstance(matcher, Mapping):
        if isinstance(matcher, list):
            raise InvalidEventPattern(f"{where}: nested arrays are not allowed")
        return
    if len(matcher) != 1:
        raise InvalidEventPattern(f"{where}: a matcher object has exactly one key")
    kind, argument = next(iter(matcher.items()))
    if kind in _STRING_OPS:
        _string_argument(argument, where, allow_ignore_case=kind in ("prefix", "suffix"))
    elif kind == "anything-but":
        if isinstance(argument, Mapping):
            _check_matcher(argument, where)
            if next(iter(argument)) not in _STRING_OPS:
                raise InvalidEventPattern(f"{where}: anything-but takes a value, a list, or a string matcher")
        elif isinstance(argument, list) and any(isinstance(v, (Mapping, list)) for v in argument):
            raise InvalidEventPattern(f"{where}: anything-but lists hold plain values")
    elif kind == "numeric":
        _numeric_argument(argument, where)
    elif kind == "exists":
        if not isinstance(argument, bool):
            raise InvalidEventPattern(f"{where}: exists takes true or false")
    elif kind == "cidr":
        try:
            ipaddress.ip_network(str(argument), strict=False)
        except ValueError:
            raise InvalidEventPattern(f"{where}: {argument!r} is not a CIDR block") from None
    else:
        raise InvalidEventPattern(f"{where}: unknown matcher {kind!r}")


def _string_argument(argument: Any, where: str, *, allow_ignore_case: bool) -> None:
    if isinstance(argument, str):
        return
    ignore_case = isinstance(argument, Mapping) and list(argument) == ["equals-ignore-case"]
    if allow_ignore_case and ignore_case and isinstance(argument["equals-ignore-case"], str):
        return
    raise InvalidEventPattern(f"{where}: expected a string")


def _numeric_argument(argument: Any, where: str) -> None:
    if not isinstance(argument, list) or len(argument) not in (2, 4):
        raise InvalidEventPattern(f"{where}: numeric takes one or two [operator, number] pairs")
    for op, number in zip(argument[::2], argument[1::2], strict=True):
        if op not in _NUMERIC or isinstance(number, bool) or not isinstance(number, (int, float)):
            raise InvalidEventPattern(f"{where}: {op!r} {number!r} is not an operator and a number")


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether `event` matches a checked `pattern`."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(branch, event) for branch in expected):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if value is _MISSING or not matches(expected, value):
                return False
        elif not _leaf_matches(expected, value):
            return False
    return True


def _leaf_matches(matchers: list[Any], value: Any) -> bool:
    for matcher in matchers:
        if isinstance(matcher, Mapping) and "exists" in matcher:
            if (value is not _MISSING) == matcher["exists"]:
                return True
            continue
        if value is _MISSING:
            continue
        candidates = value if isinstance(value, list) else [value]
        if any(_value_matches(matcher, candidate) for candidate in candidates):
            return True
    return False


def _value_matches(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        return _equal(matcher, value)
    kind, argument = next(iter(matcher.items()))
    if kind == "anything-but":
        if isinstance(argument, Mapping):
            return isinstance(value, str) and not _value_matches(argument, value)
        excluded = argument if isinstance(argument, list) else [argument]
        return not any(_equal(item, value) for item in excluded)
    if kind == "numeric":
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number_ok and all(_NUMERIC[op](value, n) for op, n in zip(argument[::2], argument[1::2], strict=True))
    if kind == "cidr":
        try:
            return ipaddress.ip_address(str(value)) in ipaddress.ip_network(str(argument), strict=False)
        except ValueError:
            return False
    return isinstance(value, str) and _string_matches(kind, argument, value)


def _string_matches(kind: str, argument: Any, value: str) -> bool:
    ignore_case = isinstance(argument, Mapping)
    text = str(argument["equals-ignore-case"] if ignore_case else argument)
    if ignore_case or kind == "equals-ignore-case":
        text, value = text.lower(), value.lower()
        if kind == "equals-ignore-case":
            return value == text
    if kind == "prefix":
        return value.startswith(text)
    if kind == "suffix":
        return value.endswith(text)
    return fnmatch.fnmatchcase(value, text.replace("[", "[[]").replace("?", "[?]"))  # only * is special


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return float(expected) == float(value)
    return type(expected) is type(value) and bool(expected == value)
