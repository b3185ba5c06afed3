"""The Amazon States Language's paths and payload templates.

- Paths (``InputPath``, ``OutputPath``, ``ItemsPath``, ``…Path`` fields) are JSONPath, read with
  jsonpath-ng; ``$$.`` reads the context object (execution, state, map item) instead.
- Reference paths (``ResultPath``) address a single node by fields and indexes, so they can be
  written: ``$`` replaces the whole input, ``null`` discards the result.
- Payload templates (``Parameters``, ``ResultSelector``, ``ItemSelector``): a key ending in
  ``.$`` takes its value from a path or an intrinsic function (every one AWS defines:
  ``asl_intrinsics.py``), nested up to 10 deep.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.parser import parse as parse_path

from demo_apps.cloud.stepfunctions import asl_intrinsics as intrinsics

_REFERENCE_STEP = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['([^']*)'\]")
MAX_NESTED_CALLS = 10  # AWS: up to 10 intrinsic functions nested in a field
_INTRINSIC = re.compile(r"^(States\.[A-Za-z0-9]+)\((.*)\)$", re.DOTALL)


class PathError(ValueError):
    """States.Runtime: a path selects nothing, or a template cannot be filled."""

    error = "States.Runtime"


class IntrinsicError(PathError):
    """States.IntrinsicFailure: an intrinsic function could not be made (asl_intrinsics.py)."""

    error = "States.IntrinsicFailure"


def check_path(path: str) -> None:
    """Raise PathError unless `path` parses (at definition time)."""
    if not path.startswith("$"):
        raise PathError(f"{path!r} must start with $")
    try:
        parse_path(path[1:] if path.startswith("$$") else path)
    except JSONPathError as exc:
        raise PathError(f"{path!r} is not a valid path: {exc}") from None


def reference_steps(path: str) -> list[str | int]:
    """The fields and indexes of a reference path; PathError if it is not one."""
    if not path.startswith("$"):
        raise PathError(f"{path!r} must start with $")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        found = _REFERENCE_STEP.match(path, position)
        if found is None:
            raise PathError(f"{path!r} is not a reference path (fields and indexes only) at {position}")
        field, index, quoted = found.groups()
        steps.append(int(index) if index is not None else (field if field is not None else quoted))
        position = found.end()
    return steps


def select(path: str, document: Any, context: Any = None) -> Any:
    """The value `path` selects: the single match, a list for a multi-match; PathError if none."""
    if path == "$":
        return document
    if path.startswith("$$"):
        return select("$" + path[2:], context)
    matches = [m.value for m in parse_path(path).find(document)]
    if not matches:
        raise PathError(f"Invalid path '{path}': no value found in the input")
    return matches[0] if len(matches) == 1 and not _is_multi(path) else matches


def _is_multi(path: str) -> bool:
    return any(token in path for token in ("[*]", "..", "[?", ":"))


def with_result(document: Any, result_path: str | None, result: Any) -> Any:
    """The state's input with the result placed at ResultPath (a copy; None discards it)."""
    if result_path is None:
        return document
    steps = reference_steps(result_path)
    if not steps:
        return result
    root = copy.deepcopy(document)
    if not isinstance(root, dict):
        raise PathError(f"ResultPath {result_path!r} needs the state's input to be a JSON object")
    node: Any = root
    for step in steps[:-1]:
        node = node[step] if isinstance(step, int) else node.setdefault(step, {})
        if not isinstance(node, (dict, list)):
            raise PathError(f"ResultPath {result_path!r} passes through a value that is not an object")
    node[steps[-1]] = result
    return root


def fill_template(template: Any, document: Any, context: Any = None) -> Any:
    """A payload template with its `.$` fields filled from the document or the context."""
    if isinstance(template, dict):
        filled: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise PathError(f"the value of {key!r} must be a path or an intrinsic function")
                filled[key[:-2]] = _evaluate(value, document, context)
            else:
                filled[key] = fill_template(value, document, context)
        return filled
    if isinstance(template, list):
        return [fill_template(item, document, context) for item in template]
    return template


def _evaluate(expression: str, document: Any, context: Any) -> Any:
    expression = expression.strip()
    if expression.startswith("$"):
        return select(expression, document, context)
    found = _INTRINSIC.match(expression)
    if found is None:
        raise PathError(f"{expression!r} is neither a path nor an intrinsic function")
    if expression.count("(") > MAX_NESTED_CALLS:
        raise IntrinsicError(f"{expression!r} nests more than {MAX_NESTED_CALLS} intrinsic functions")
    name, arguments = found.group(1), [_argument(a, document, context) for a in _split_arguments(found.group(2))]
    try:
        return intrinsics.call(name, arguments)
    except intrinsics.IntrinsicFailure as exc:
        raise IntrinsicError(str(exc)) from None


def _split_arguments(text: str) -> list[str]:
    """Top-level comma-separated arguments, respecting quotes and nested calls."""
    parts: list[str] = []
    depth, quoted = 0, False
    current: list[str] = []
    for index, char in enumerate(text):
        if char == "'" and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _argument(text: str, document: Any, context: Any) -> Any:
    if len(text) >= 2 and text.startswith("'") and text.endswith("'"):
        try:
            return intrinsics.Literal(text[1:-1])
        except intrinsics.IntrinsicFailure as exc:
            raise IntrinsicError(str(exc)) from None
    if text.startswith("$") or text.startswith("States."):
        return _evaluate(text, document, context)
    try:
        return json.loads(text)
    except ValueError:
        raise PathError(f"cannot read the argument {text!r}") from None
