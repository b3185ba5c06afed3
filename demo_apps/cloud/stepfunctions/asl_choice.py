"""Choice rules of the Amazon States Language: checking them and evaluating them on an input.

A rule is a ``Variable`` with one comparison — String/Numeric/Boolean/Timestamp ``Equals``,
``LessThan``, ``GreaterThan``, ``LessThanEquals``, ``GreaterThanEquals`` (each also as
``…Path``, comparing with another value of the input), ``StringMatches`` (``*`` wildcards),
``IsNull``, ``IsPresent``, ``IsString``, ``IsNumeric``, ``IsBoolean``, ``IsTimestamp`` — or
``And``/``Or`` of rules, or ``Not`` of one. A comparison of the wrong type is false, as AWS has it.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from demo_apps.cloud.stepfunctions.asl_paths import PathError, check_path, select

_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_KINDS: Final = ("String", "Numeric", "Boolean", "Timestamp")
_TESTS: Final = ("IsNull", "IsPresent", "IsString", "IsNumeric", "IsBoolean", "IsTimestamp")
COMPARISONS: Final = frozenset(
    [f"{kind}{order}" for kind in _KINDS for order in _ORDER]
    + [f"{kind}{order}Path" for kind in _KINDS for order in _ORDER]
    + ["StringMatches", *_TESTS]
)


def check_rule(rule: Any, where: str, top_level: bool = True) -> None:
    """Raise ValueError naming `where` unless the rule is well formed."""
    if not isinstance(rule, Mapping):
        raise ValueError(f"{where}: a choice rule must be an object")
    if top_level and not isinstance(rule.get("Next"), str):
        raise ValueError(f"{where}: a choice rule needs a Next")
    for combinator in ("And", "Or"):
        if combinator in rule:
            branches = rule[combinator]
            if not isinstance(branches, list) or not branches:
                raise ValueError(f"{where}.{combinator}: needs a non-empty list of rules")
            for index, branch in enumerate(branches):
                check_rule(branch, f"{where}.{combinator}[{index}]", top_level=False)
            return
    if "Not" in rule:
        check_rule(rule["Not"], f"{where}.Not", top_level=False)
        return
    variable = rule.get("Variable")
    if not isinstance(variable, str):
        raise ValueError(f"{where}: a choice rule needs a Variable (or And, Or, Not)")
    try:
        check_path(variable)
    except PathError as exc:
        raise ValueError(f"{where}.Variable: {exc}") from None
    found = [key for key in rule if key in COMPARISONS]
    if len(found) != 1:
        raise ValueError(f"{where}: a choice rule needs exactly one comparison, found {found or 'none'}")


def evaluate(rule: Mapping[str, Any], document: Any, context: Any = None) -> bool:
    if "And" in rule:
        return all(evaluate(branch, document, context) for branch in rule["And"])
    if "Or" in rule:
        return any(evaluate(branch, document, context) for branch in rule["Or"])
    if "Not" in rule:
        return not evaluate(rule["Not"], document, context)
    comparison = next(key for key in rule if key in COMPARISONS)
    try:
        value = select(rule["Variable"], document, context)
    except PathError:
        if comparison == "IsPresent":
            return not rule[comparison]
        return False  # AWS: a missing variable fails the comparison
    expected = rule[comparison]
    if comparison in _TESTS:
        return _type_test(comparison, value) == bool(expected)
    if comparison.endswith("Path"):
        comparison = comparison[:-4]
        try:
            expected = select(expected, document, context)
        except PathError:
            return False
    if comparison == "StringMatches":
        return isinstance(value, str) and fnmatch.fnmatchcase(
            value, str(expected).replace("[", "[[]").replace("?", "[?]")
        )
    kind = next(k for k in _KINDS if comparison.startswith(k))
    left, right = _typed(kind, value), _typed(kind, expected)
    if left is None or right is None:
        return False
    return _ORDER[comparison[len(kind) :]](left, right)


def _typed(kind: str, value: Any) -> Any:
    if kind == "String":
        return value if isinstance(value, str) else None
    if kind == "Boolean":
        return value if isinstance(value, bool) else None
    if kind == "Numeric":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return _timestamp(value)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _type_test(test: str, value: Any) -> bool:
    return {
        "IsNull": value is None,
        "IsPresent": True,
        "IsString": isinstance(value, str),
        "IsNumeric": isinstance(value, (int, float)) and not isinstance(value, bool),
        "IsBoolean": isinstance(value, bool),
        "IsTimestamp": _timestamp(value) is not None,
    }[test]
