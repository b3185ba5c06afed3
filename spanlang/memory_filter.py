"""X-Ray filter expressions evaluated over spans held in memory: the SQL back end's twin.

The collector compiles an expression to SQL over its stored rows (collector/storage/
filter_sql.py); the tracer's pytest plugin asks the same questions of the spans a test
captured. The semantics are the SQL's, SQL's NULLs included (a comparison with a missing value
is unknown, ``!=`` is IS DISTINCT FROM, ``!`` turns unknown into true): plain keywords test the
trace's root; ``duration`` is first start to last end; ``partial``, ``user``, ``cold_start`` and
annotations look at every span; ``service(...) { expr }`` holds when some span of that node
meets ``expr``; ``edge(a, b) { expr }`` when a call from a to b has a callee span meeting it
(hops.py). tests/unit/collector/test_memory_filter.py holds the two back ends to the same
answers on the same spans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spanlang import filter_ast as ast
from spanlang.held_span import AnnotationValue, HeldSpan
from spanlang.hops import Hop, hops

NS_PER_S = 1_000_000_000
Truth = bool | None  # SQL's three values: None is unknown (a NULL)
_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}
_STRINGS = {"http.url": "http_url", "http.method": "http_method", "http.useragent": "http_user_agent", "name": "name"}


@dataclass(frozen=True)
class _Trace:
    root: HeldSpan
    spans: tuple[HeldSpan, ...]
    hops: tuple[Hop, ...]


def matching_traces(expr: ast.Expr, spans: Sequence[HeldSpan]) -> list[str]:
    """The trace ids (by their roots' start) whose root and spans meet `expr`; FilterError for
    what the SQL back end refuses too (a service(), edge() or id() inside a block)."""
    _check_nesting(expr, inside=None)
    by_trace: dict[str, list[HeldSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    hops_by_trace: dict[str, list[Hop]] = {}
    for hop in hops(spans):
        hops_by_trace.setdefault(hop.span.trace_id, []).append(hop)
    found = []
    for root in sorted((s for s in spans if s.is_root and not s.in_progress), key=lambda s: (s.start_ns, s.trace_id)):
        trace = _Trace(root, tuple(by_trace[root.trace_id]), tuple(hops_by_trace.get(root.trace_id, ())))
        if _trace_level(expr, trace) is True:
            found.append(root.trace_id)
    return list(dict.fromkeys(found))  # a trace with several roots once


def _check_nesting(expr: ast.Expr | None, inside: str | None) -> None:
    match expr:
        case ast.And(parts) | ast.Or(parts):
            for part in parts:
                _check_nesting(part, inside)
        case ast.Not(part):
            _check_nesting(part, inside)
        case ast.ServiceTest(_, block, column) | ast.EdgeTest(_, _, block, column):
            name = "service()" if isinstance(expr, ast.ServiceTest) else "edge()"
            if inside is not None:
                raise ast.FilterError(f"service(), edge() and id() cannot be nested inside {inside} {{ }}", column)
            _check_nesting(block, name)
        case ast.TraceIdTest() if inside is not None:
            raise ast.FilterError(f"service(), edge() and id() cannot be nested inside {inside} {{ }}", 0)


def _all(values: Sequence[Truth]) -> Truth:
    return False if False in values else None if None in values else True


def _any(values: Sequence[Truth]) -> Truth:
    return True if True in values else None if None in values else False


def _trace_level(expr: ast.Expr, trace: _Trace) -> Truth:
    match expr:
        case ast.And(parts):
            return _all([_trace_level(p, trace) for p in parts])
        case ast.Or(parts):
            return _any([_trace_level(p, trace) for p in parts])
        case ast.Not(part):
            return _trace_level(part, trace) is not True
        case ast.BoolTest(keyword) if keyword in ("partial", "cold_start"):
            attribute = "in_progress" if keyword == "partial" else "cold_start"
            found = any(getattr(s, attribute) for s in trace.spans)
            return found if expr.value else not found
        case ast.NumTest("duration", op, value):
            took_ns = max(s.end_ns for s in trace.spans) - min(s.start_ns for s in trace.spans)
            return _COMPARE[op](took_ns, round(value * NS_PER_S))
        case ast.StrTest("user", op, value):
            return _any([_string(s.user, op, value) for s in trace.spans])
        case ast.AnnotationTest():
            return any(_annotation(span, expr) is True for span in trace.spans)
        case ast.AttributeTest():
            return any(_attribute(span, expr) is True for span in trace.spans)
        case ast.LogTest(op, value):
            return any(_string(body, op, value) is True for span in trace.spans for body in span.logs)
        case ast.ServiceTest(node, block):
            return any(_of_node(s, node) and _span_level(block, s) is True for s in trace.spans)
        case ast.EdgeTest(source, target, block):
            return any(_calls(hop, source, target) and _span_level(block, hop.span) is True for hop in trace.hops)
        case ast.TraceIdTest(trace_id):
            return trace.root.trace_id == trace_id.hex()
    return _span_level(expr, trace.root)


def _span_level(expr: ast.Expr | None, span: HeldSpan) -> Truth:
    match expr:
        case None:
            return True
        case ast.And(parts):
            return _all([_span_level(p, span) for p in parts])
        case ast.Or(parts):
            return _any([_span_level(p, span) for p in parts])
        case ast.Not(part):
            return _span_level(part, span) is not True
        case ast.BoolTest(keyword, value):
            found = _flag(keyword, span)
            return found if value else not found
        case ast.NumTest(keyword, op, value):
            if keyword == "http.status":
                return None if span.http_status is None else _COMPARE[op](span.http_status, value)
            return _COMPARE[op](span.duration_ns, round(value * NS_PER_S))
        case ast.StrTest(keyword, op, value):
            return _string(span.user if keyword == "user" else getattr(span, _STRINGS[keyword]), op, value)
        case ast.AnnotationTest():
            return _annotation(span, expr)
        case ast.AttributeTest():
            return _attribute(span, expr)
        case ast.LogTest(op, value):
            return any(_string(body, op, value) is True for body in span.logs)
    raise AssertionError(f"not a test of one span: {expr!r}")  # _check_nesting refused it


def _flag(keyword: str, span: HeldSpan) -> bool:
    if keyword == "ok":
        return not (span.error or span.fault or span.throttle)
    if keyword == "root":
        return span.is_root
    if keyword == "partial":
        return span.in_progress
    return bool(getattr(span, keyword))  # error, fault, throttle, cold_start


def _string(column: str | None, op: str, value: str) -> Truth:
    if op == "!=":
        return column != value  # IS DISTINCT FROM: a missing value differs
    if column is None:
        return None
    if op == "=":
        return column == value
    if op == "CONTAINS":
        return value in column
    return column.startswith(value) if op == "BEGINSWITH" else column.endswith(value)


def _annotation(span: HeldSpan, test: ast.AnnotationTest) -> Truth:
    if test.key not in span.annotations:
        return False
    return True if test.op is None else _compared(span.annotations[test.key], test.op, test.value)


def _attribute(span: HeldSpan, test: ast.AttributeTest) -> Truth:
    held = span.resource if test.source == "resource" else span.attributes
    if test.key not in held:
        return False
    return True if test.op is None else _compared(_as_stored(held[test.key]), test.op, test.value)


def _as_stored(value: object) -> object:
    """The value as the collector's JSON holds it: a NaN or infinity is null there."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _compared(held: object, op: str, value: AnnotationValue | None) -> Truth:
    """A present value against a test's: strings with strings, numbers with numbers, booleans
    with booleans; ``!=`` holds for a value of another type."""
    if isinstance(value, bool):
        same = isinstance(held, bool) and held == value
        return same if op == "=" else not same if isinstance(held, bool) else True
    if isinstance(value, float):
        is_number = isinstance(held, float | int) and not isinstance(held, bool)
        return _COMPARE[op](float(held), value) if is_number else None  # type: ignore[arg-type]
    if not isinstance(held, str):
        return True if op == "!=" else None
    if op in ("<", "<=", ">", ">="):
        return _COMPARE[op](held, value)
    return _string(held, op, str(value))


def _of_node(span: HeldSpan, node: ast.NodeRef | None) -> bool:
    """A span of the node: its own (service, origin as type) or a client span calling it."""
    if node is None:
        return True
    own = (node.name is None or span.service == node.name) and (node.type is None or span.origin == node.type)
    called = (node.name is None or span.target_name == node.name) and (
        node.type is None or span.target_type == node.type
    )
    return own or called


def _calls(hop: Hop, source: ast.NodeRef, target: ast.NodeRef) -> bool:
    if hop.role not in ("entry", "inferred", "link"):
        return False

    def matches(name: str | None, node_type: str | None, node: ast.NodeRef) -> bool:
        # A hop end without a type stands for its service's node: any type matches it.
        return (node.name is None or name == node.name) and (node.type is None or node_type in (None, node.type))

    return matches(hop.caller, hop.caller_type, source) and matches(hop.callee, hop.callee_type, target)
