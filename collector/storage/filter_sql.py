"""Filter expressions compiled to parameterized DuckDB SQL.

The compiled text is built only from the fixed fragments in this module: keywords map to
whitelisted column names, operators to a fixed table, and every value the user typed (strings,
numbers, annotation keys, service names, trace ids) is a bound ``?`` parameter. The output is
a boolean predicate over ``r``, the root span of a candidate trace (a row of ``spans``).

Semantics follow X-Ray: plain keywords test the trace's root (its response); ``duration`` is
the whole trace, first start to last end; ``partial``, ``user``, ``cold_start``,
annotations and attributes (attribute_sql.py) look at every span of the trace;
``service(...) { expr }`` holds when some span of that node satisfies ``expr`` (keywords then
test that span); ``edge(a, b) { expr }`` when a call from a to b has a callee span satisfying
``expr``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from collector.storage.attribute_sql import attribute_condition
from collector.storage.protocols import Statement
from spanlang import filter_ast as ast

NS_PER_S: Final = 1_000_000_000
_NUM_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_STR_COLUMNS: Final = {
    "http.url": "http_url",
    "http.method": "http_method",
    "http.useragent": "http_user_agent",
    "name": "name",
    "user": "user_id",
}
_FLAG_COLUMNS: Final = {"error": "error", "fault": "fault", "throttle": "throttle"}


@dataclass(frozen=True)
class _Scope:
    """Where keywords point: the trace's root ``r`` or a span ``s`` inside a block."""

    alias: str
    trace_level: bool
    span_window: tuple[int, int]


def compile_trace_predicate(expr: ast.Expr, span_window: tuple[int, int]) -> Statement:
    """A predicate over the root row ``r``; subqueries look at spans starting in span_window."""
    return _compile(expr, _Scope("r", True, span_window))


def _join(parts: list[Statement], word: str) -> Statement:
    text = f" {word} ".join(f"({p.text})" for p in parts)
    return Statement(text, tuple(v for p in parts for v in p.params))


def _compile(expr: ast.Expr, scope: _Scope) -> Statement:
    match expr:
        case ast.And(parts):
            return _join([_compile(p, scope) for p in parts], "AND")
        case ast.Or(parts):
            return _or(parts, scope)
        case ast.Not(part):
            inner = _compile(part, scope)
            return Statement(f"NOT coalesce(({inner.text}), false)", inner.params)
        case ast.BoolTest():
            return _bool(expr, scope)
        case ast.NumTest():
            return _number(expr, scope)
        case ast.StrTest():
            return _string(expr, scope)
        case ast.AnnotationTest():
            return _annotation(expr, scope)
        case ast.AttributeTest():
            if scope.trace_level:  # any span of the trace, as annotations
                return _any_span(attribute_condition(expr, "s"), scope)
            return attribute_condition(expr, scope.alias)
        case ast.LogTest():
            return _log(expr, scope)
        case ast.ServiceTest():
            return _service(expr, scope)
        case ast.EdgeTest():
            return _edge(expr, scope)
        case ast.TraceIdTest(trace_id):
            return Statement(f"{scope.alias}.trace_id = ?", (uuid.UUID(bytes=trace_id),))
    raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover - the AST is closed


def _any_span(condition: Statement, scope: _Scope) -> Statement:
    """Some span of r's trace (in the span window) meets `condition` (over alias s)."""
    lo, hi = scope.span_window
    text = (
        f"{scope.alias}.trace_id IN (SELECT s.trace_id FROM spans s"
        f" WHERE s.start_ns >= ? AND s.start_ns < ? AND ({condition.text}))"
    )
    return Statement(text, (lo, hi, *condition.params))


def _bool(test: ast.BoolTest, scope: _Scope) -> Statement:
    a = scope.alias
    keyword = test.keyword
    if keyword in _FLAG_COLUMNS:
        found = Statement(f"{a}.{_FLAG_COLUMNS[keyword]}")
    elif keyword == "ok":
        found = Statement(f"NOT ({a}.error OR {a}.fault OR {a}.throttle)")
    elif keyword == "root":
        found = Statement(f"{a}.parent_span_id IS NULL")
    elif keyword == "partial":
        found = _any_span(Statement("s.in_progress"), scope) if scope.trace_level else Statement(f"{a}.in_progress")
    else:  # cold_start
        cold = Statement("coalesce(s.cold_start, false)")
        found = _any_span(cold, scope) if scope.trace_level else Statement(f"coalesce({a}.cold_start, false)")
    return found if test.value else Statement(f"NOT ({found.text})", found.params)


def _number(test: ast.NumTest, scope: _Scope) -> Statement:
    op = _NUM_OPS[test.op]
    if test.keyword == "http.status":
        return Statement(f"{scope.alias}.http_status {op} ?", (test.value,))
    threshold_ns = round(test.value * NS_PER_S)
    if test.keyword == "duration" and scope.trace_level:
        lo, hi = scope.span_window
        text = (
            "r.trace_id IN (SELECT s.trace_id FROM spans s WHERE s.start_ns >= ? AND s.start_ns < ?"
            " AND s.trace_id IN (SELECT trace_id FROM roots)"
            f" GROUP BY s.trace_id HAVING max(s.start_ns + s.duration_ns) - min(s.start_ns) {op} ?)"
        )
        return Statement(text, (lo, hi, threshold_ns))
    return Statement(f"{scope.alias}.duration_ns {op} ?", (threshold_ns,))


def string_condition(column: str, op: str, value: str) -> Statement:
    """`column` (a whitelisted name) compared with a bound value; no LIKE, so % and _ are literal."""
    if op == "=":
        return Statement(f"{column} = ?", (value,))
    if op == "!=":
        return Statement(f"{column} IS DISTINCT FROM ?", (value,))
    function = {"CONTAINS": "contains", "BEGINSWITH": "starts_with", "ENDSWITH": "ends_with"}[op]
    return Statement(f"{function}({column}, ?)", (value,))


def _string(test: ast.StrTest, scope: _Scope) -> Statement:
    column = _STR_COLUMNS[test.keyword]
    if test.keyword == "user" and scope.trace_level:
        return _any_span(string_condition(f"s.{column}", test.op, test.value), scope)
    return string_condition(f"{scope.alias}.{column}", test.op, test.value)


def _annotation_value(test: ast.AnnotationTest) -> Statement:
    if test.op is None:
        return Statement("true")
    value = test.value
    if isinstance(value, bool):
        return Statement("a.bool_value = ?" if test.op == "=" else "a.bool_value IS DISTINCT FROM ?", (value,))
    if isinstance(value, float):
        return Statement(f"a.num_value {_NUM_OPS[test.op]} ?", (value,))
    if test.op in _NUM_OPS and test.op not in ("=", "!="):
        return Statement(f"a.str_value {_NUM_OPS[test.op]} ?", (value,))
    return string_condition("a.str_value", test.op, str(value))


def _annotation(test: ast.AnnotationTest, scope: _Scope) -> Statement:
    condition = _annotation_value(test)
    a = scope.alias
    if scope.trace_level:
        lo, hi = scope.span_window
        text = (
            f"{a}.trace_id IN (SELECT a.trace_id FROM annotations a"
            f" WHERE a.start_ns >= ? AND a.start_ns < ? AND a.key = ? AND ({condition.text}))"
        )
        return Statement(text, (lo, hi, test.key, *condition.params))
    text = (
        "EXISTS (SELECT 1 FROM annotations a WHERE a.trace_id = s.trace_id AND a.span_id = s.span_id"
        f" AND a.start_ns = s.start_ns AND a.key = ? AND ({condition.text}))"
    )
    return Statement(text, (test.key, *condition.params))


def _log(test: ast.LogTest, scope: _Scope) -> Statement:
    condition = string_condition("l.body", test.op, test.value)
    if scope.trace_level:  # any record of the trace, in a span or not
        lo, hi = scope.span_window
        text = (
            f"{scope.alias}.trace_id IN (SELECT l.trace_id FROM logs l"
            f" WHERE l.time_ns >= ? AND l.time_ns < ? AND ({condition.text}))"
        )
        return Statement(text, (lo, hi, *condition.params))
    text = (
        f"EXISTS (SELECT 1 FROM logs l WHERE l.trace_id = s.trace_id AND l.span_id = s.span_id AND ({condition.text}))"
    )
    return Statement(text, condition.params)


def node_condition(node: ast.NodeRef | None, alias: str) -> Statement:
    """Spans of a node: its own spans (service name, origin as type) or client spans calling it."""
    if node is None:
        return Statement("true")
    own, called = [], []
    own_params: list[Any] = []
    called_params: list[Any] = []
    if node.name is not None:
        own.append(f"{alias}.service = ?")
        own_params.append(node.name)
        called.append(f"{alias}.target_name = ?")
        called_params.append(node.name)
    if node.type is not None:
        own.append(f"{alias}.origin = ?")
        own_params.append(node.type)
        called.append(f"{alias}.target_type = ?")
        called_params.append(node.type)
    text = f"({' AND '.join(own)}) OR ({' AND '.join(called)})"
    return Statement(text, (*own_params, *called_params))


def _block(block: ast.Expr | None, column: int, where: str) -> Statement:
    if block is None:
        return Statement("true")
    if _has_nested_graph_test(block):
        raise ast.FilterError(f"service(), edge() and id() cannot be nested inside {where} {{ }}", column)
    return _compile(block, _Scope("s", False, (0, 0)))


def _has_nested_graph_test(expr: ast.Expr) -> bool:
    match expr:
        case ast.ServiceTest() | ast.EdgeTest() | ast.TraceIdTest():
            return True
        case ast.And(parts) | ast.Or(parts):
            return any(_has_nested_graph_test(p) for p in parts)
        case ast.Not(part):
            return _has_nested_graph_test(part)
    return False


def _require_trace_level(scope: _Scope, column: int, what: str) -> None:
    if not scope.trace_level:
        raise ast.FilterError(f"{what} cannot be nested inside another block", column)


def _service(test: ast.ServiceTest, scope: _Scope) -> Statement:
    return _any_span(_service_span(test, scope), scope)


def _service_span(test: ast.ServiceTest, scope: _Scope) -> Statement:
    """What a span of the trace must meet for `service(...) { ... }` to hold (over alias s)."""
    _require_trace_level(scope, test.column, "service()")
    node = node_condition(test.node, "s")
    block = _block(test.block, test.column, "service()")
    return Statement(f"({node.text}) AND ({block.text})", node.params + block.params)


def _or(parts: tuple[ast.Expr, ...], scope: _Scope) -> Statement:
    """OR, with its service() tests asked of one scan of the spans: "some span meets A" or "some
    span meets B" is "some span meets A or B" (a group of an architecture's nine services took
    nine scans, 650 ms over 1M spans; bench/query.py)."""
    services = [p for p in parts if isinstance(p, ast.ServiceTest)]
    if len(services) < 2:
        return _join([_compile(p, scope) for p in parts], "OR")
    merged = _any_span(_join([_service_span(p, scope) for p in services], "OR"), scope)
    return _join([merged, *(_compile(p, scope) for p in parts if not isinstance(p, ast.ServiceTest))], "OR")


def _calls_node(node: ast.NodeRef, side: str) -> Statement:
    parts: list[str] = []
    params: list[Any] = []
    if node.name is not None:
        parts.append(f"c.{side} = ?")
        params.append(node.name)
    if node.type is not None:
        # An internal span has no type of its own; it stands for its service's node.
        parts.append(f"coalesce(c.{side}_type, ?) = ?")
        params += [node.type, node.type]
    return Statement(" AND ".join(parts) or "true", tuple(params))


def _edge(test: ast.EdgeTest, scope: _Scope) -> Statement:
    _require_trace_level(scope, test.column, "edge()")
    lo, hi = scope.span_window
    source = _calls_node(test.source, "caller")
    target = _calls_node(test.target, "callee")
    block = _block(test.block, test.column, "edge()")
    text = (
        "r.trace_id IN (SELECT c.trace_id FROM calls c JOIN spans s"
        " ON s.trace_id = c.trace_id AND s.span_id = c.span_id AND s.start_ns = c.start_ns"
        " WHERE c.start_ns >= ? AND c.start_ns < ? AND c.role IN ('entry', 'inferred', 'link')"
        f" AND ({source.text}) AND ({target.text}) AND ({block.text}))"
    )
    return Statement(text, (lo, hi, *source.params, *target.params, *block.params))
