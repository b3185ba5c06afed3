"""Trace search in SQL: the newest root spans in a window that satisfy a filter expression.

Each trace is summarised over all its spans (flags, cold start, span count, services), read
from the parts its writes left (trace_parts_sql.py); spans of a trace may start up to
SEARCH_SLACK_NS after its root, so summaries look that far.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from collector.storage.filter_sql import compile_trace_predicate
from collector.storage.protocols import Statement, TimeWindow, TraceSummary
from spanlang import filter_ast as ast

SEARCH_SLACK_NS: Final = 3600 * 10**9

ROOTS_CTE: Final = """roots AS (
    SELECT * FROM spans WHERE start_ns >= ? AND start_ns < ? AND parent_span_id IS NULL AND NOT in_progress
)"""

_SEARCH: Final = """
WITH {roots}, matched AS (
    SELECT r.trace_id, r.service, r.name, r.start_ns, r.duration_ns, r.http_status
    FROM roots r WHERE {predicate}
    ORDER BY r.start_ns DESC, r.trace_id LIMIT ?
)
SELECT m.trace_id, m.service, m.name, m.start_ns, m.duration_ns, m.http_status,
       bool_or(p.error), bool_or(p.fault), bool_or(p.throttle), bool_or(p.cold_start),
       sum(p.spans), list_sort(list_distinct(flatten(list(p.services)))), max(p.end_ns) - min(p.start_ns)
FROM matched m JOIN trace_parts p ON p.trace_id = m.trace_id
WHERE p.start_ns >= ? AND p.start_ns < ?
GROUP BY ALL
ORDER BY m.start_ns DESC, m.trace_id
"""


def span_window(window: TimeWindow) -> tuple[int, int]:
    """Where the spans of traces rooted in `window` can start."""
    return window.start_ns - SEARCH_SLACK_NS, window.end_ns + SEARCH_SLACK_NS


def matching_roots(window: TimeWindow, expr: ast.Expr | None) -> tuple[str, str, tuple[Any, ...]]:
    """(roots CTE, predicate over r, parameters) for traces rooted in `window` matching `expr`."""
    predicate = compile_trace_predicate(expr, span_window(window)) if expr is not None else Statement("true")
    return ROOTS_CTE, predicate.text, (window.start_ns, window.end_ns, *predicate.params)


def search_statement(window: TimeWindow, expr: ast.Expr | None, limit: int) -> Statement:
    roots, predicate, params = matching_roots(window, expr)
    text = _SEARCH.format(roots=roots, predicate=predicate)
    return Statement(text, (*params, limit, *span_window(window)))


def summaries(rows: Sequence[tuple[Any, ...]]) -> list[TraceSummary]:
    return [
        TraceSummary(
            trace_id=r[0].hex,
            root_service=r[1],
            root_name=r[2],
            start_ns=int(r[3]),
            duration_ms=r[4] / 1e6,
            http_status=r[5],
            error=bool(r[6]),
            fault=bool(r[7]),
            throttle=bool(r[8]),
            cold_start=bool(r[9]),
            span_count=int(r[10]),
            services=tuple(r[11] or ()),
            trace_duration_ms=r[12] / 1e6,
        )
        for r in rows
    ]
