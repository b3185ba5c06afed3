"""The SQL behind the service map, throttle forensics and analytics: aggregates over ``calls``.

``calls`` holds one row per hop, resolved at ingest (collector/storage/calls_sql.py), so none
of these statements joins spans to spans. Each aggregates the calls in the window (optionally
of traces matching a filter) by its key *and a latency bucket*: 20 log-spaced buckets per
decade with each bucket's count, min and max. Percentiles and histograms come from those
rows in Python (collector.query.figures): one hash aggregate with plain sums instead of exact
per-group quantiles costs a fraction of the time at 10M spans (bench/query.py), groups merge
exactly (an untyped caller folds into its service's node after the query), and a percentile
is exact whenever its bucket holds one distinct value, else within that bucket's bounds.
``{roots}``, ``{filter}``, ``{key}`` and ``{scope}`` are filled with fixed fragments by the
builders at the end of this module; values are bound parameters. Whole minutes of the map come from the per-minute
rollup (collector/storage/rollup_sql.py), so its cost follows minutes x hops, not calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from collector.storage.filter_sql import compile_trace_predicate
from collector.storage.protocols import ByField, ByTimeBucket, Grouping, Statement, Subject, TimeWindow
from collector.storage.rollup_sql import (
    BUCKETS_PER_DECADE,
    CONSUMED,
    DWELL_BUCKET,
    ESTIMATED,
    HOP_KEY,
    INIT_WAITED,
    LATENCY_BUCKET,
    MINUTE_NS,
    WAITED,
)
from collector.storage.search_sql import ROOTS_CTE, span_window
from spanlang import filter_ast as ast

__all__ = ["BUCKETS_PER_DECADE", "BY_KEY", "HOP_ROWS", "THROTTLE_SOURCES"]

PICKED: Final = f"""
WITH {{roots}}, picked AS (
    SELECT *, {WAITED} AS waited_ns FROM calls c WHERE c.start_ns >= ? AND c.start_ns < ? {{filter}}
)"""

FILTER_TRACES: Final = "AND c.trace_id IN (SELECT r.trace_id FROM roots r WHERE {predicate})"

# The figure columns every aggregate ends with, in the order FigureAccumulator.add reads them.
_FIGURES_OF_ROWS = f"""{LATENCY_BUCKET} AS bucket, count(*), sum((NOT (error OR fault OR throttle))::INTEGER),
    sum(error::INTEGER), sum(fault::INTEGER), sum(throttle::INTEGER), sum(cold_start::INTEGER),
    sum({INIT_WAITED}), sum(waited_ns), min(waited_ns), max(waited_ns), sum({ESTIMATED})"""
# What rollup rows rolled before schema version 10 estimate: their requests.
_ROLLED_ESTIMATE = "sum(coalesce(estimated, requests)) AS estimated"

# The map reads the window's whole minutes up to the rollup's watermark, [lo, hi), from the
# rollup and every other call of the window from calls; the two parts come back as separate
# rows of the same shape, which the caller adds up (exactly: counts and sums add, min and max
# combine).
# Calls not in the rollup: the window's head [start, lo) and tail [hi, end), as two range
# scans (one scan with NOT BETWEEN could not skip row groups by their zone maps).
# Only the columns the sums read: most of a call's columns (ids, times) are no part of them.
_RAW = f"""SELECT {HOP_KEY}, error, fault, throttle, cold_start, weight, init_ns, dwell_ns,
           {WAITED} AS waited_ns, {CONSUMED} AS consumed, {LATENCY_BUCKET} AS bucket, {DWELL_BUCKET} AS dwell_bucket
    FROM calls c WHERE c.start_ns >= ? AND c.start_ns < ? {{filter}}"""
_MAP_PARTS = f"""
WITH {{roots}}, picked AS (
    {_RAW}
    UNION ALL
    {_RAW}
)"""
_HOP = "h.caller, h.caller_type, h.callee, h.callee_type, h.role, h.async, h.consumed"
_IN_ROLLED = "minute >= ? AND minute < ?"

# The map's hop rows in one statement. The raw calls are picked, bucketed and grouped once (by
# hop, latency bucket and queue-dwell bucket: a few thousand rows), and both of the map's row
# kinds are sums over that: part 0, counts (the hop key, requests, ok, errors, faults,
# throttles, cold starts, NULL, estimated requests) and part 1, latency (the hop key, kind (0
# waited, 1 dwell), bucket, count, init ns, waited ns, min, max, estimated requests), each from
# the rollup's whole minutes and from the raw calls; the caller adds them up (exactly: counts
# and sums add, min and max combine). One scan of the raw calls, not one per row kind: they
# are most of the map's cost (bench/query.py). Each part is materialized, then limited on its
# own: streamed, the latency part's UNION ALL never finished in DuckDB 1.5 once the raw calls
# ran to millions (ARCHITECTURE.md, *A map query that never finished*).
HOP_ROWS: Final = f"""{_MAP_PARTS}, raw AS MATERIALIZED (
    SELECT {HOP_KEY}, consumed, bucket, dwell_bucket, count(*) AS n,
           sum((NOT (error OR fault OR throttle))::INTEGER) AS ok, sum(error::INTEGER) AS errors,
           sum(fault::INTEGER) AS faults, sum(throttle::INTEGER) AS throttles, sum(cold_start::INTEGER) AS cold,
           sum({ESTIMATED}) AS estimated, sum({INIT_WAITED}) AS init_ns, sum(waited_ns) AS waited_ns,
           min(waited_ns) AS min_waited, max(waited_ns) AS max_waited, min(dwell_ns) AS min_dwell,
           max(dwell_ns) AS max_dwell
    FROM picked GROUP BY ALL
), rolled_counts AS (
    SELECT hop_id, sum(requests) AS requests, sum(ok) AS ok, sum(errors) AS errors, sum(faults) AS faults,
           sum(throttles) AS throttles, sum(cold) AS cold, {_ROLLED_ESTIMATE}
    FROM call_minutes WHERE {_IN_ROLLED} GROUP BY hop_id
), rolled_latency AS (
    SELECT hop_id, kind, bucket, sum(requests) AS requests, sum(init_ns) AS init_ns, sum(waited_ns) AS waited_ns,
           min(min_ns) AS min_ns, max(max_ns) AS max_ns, {_ROLLED_ESTIMATE}
    FROM latency_minutes WHERE {_IN_ROLLED} GROUP BY hop_id, kind, bucket
), counts AS MATERIALIZED (
    SELECT 0 AS part, {_HOP}, r.requests, r.ok, r.errors, r.faults, r.throttles, r.cold, NULL::BIGINT, r.estimated
    FROM rolled_counts r JOIN hop_keys h USING (hop_id) WHERE r.requests <> 0
    UNION ALL
    SELECT 0, {HOP_KEY}, consumed, sum(n), sum(ok), sum(errors), sum(faults), sum(throttles), sum(cold), NULL,
           sum(estimated)
    FROM raw GROUP BY {HOP_KEY}, consumed
), latency AS MATERIALIZED (
    SELECT 1, {_HOP}, r.kind, r.bucket, r.requests, r.init_ns, r.waited_ns, r.min_ns, r.max_ns, r.estimated
    FROM rolled_latency r JOIN hop_keys h USING (hop_id) WHERE r.requests <> 0
    UNION ALL
    SELECT 1, {HOP_KEY}, consumed, 0, bucket, sum(n), sum(init_ns), sum(waited_ns), min(min_waited),
           max(max_waited), sum(estimated)
    FROM raw GROUP BY {HOP_KEY}, consumed, bucket
    UNION ALL
    SELECT 1, {HOP_KEY}, consumed, 1, dwell_bucket, sum(n), 0, 0, min(min_dwell), max(max_dwell), sum(estimated)
    FROM raw WHERE dwell_bucket IS NOT NULL GROUP BY {HOP_KEY}, consumed, dwell_bucket
)
(SELECT * FROM counts LIMIT ?)
UNION ALL
(SELECT * FROM latency LIMIT ?)
"""
COUNTS_PART: Final = 0


# Where each throttled trace's 429 started: its throttled hop that began last (the deepest in a
# synchronous chain: a gateway's own limit, the function's concurrency, a downstream AWS call).
THROTTLE_SOURCES: Final = """
WITH {roots}
SELECT source.name, source.type, count(*) AS traces FROM (
    SELECT arg_max({'name': callee, 'type': callee_type}, start_ns) AS source
    FROM throttled_calls c WHERE c.start_ns >= ? AND c.start_ns < ? {filter}
    GROUP BY trace_id
) GROUP BY ALL ORDER BY traces DESC, source.name LIMIT ?
"""

# A group's throttle sources: its rollup's for whole minutes, the raw tail's after them.
GROUP_THROTTLE_SOURCES: Final = """
WITH {roots}
SELECT name, type, sum(traces) AS traces FROM (
    SELECT name, type, traces FROM group_throttle_minutes WHERE group_id = {group_id} AND minute >= ? AND minute < ?
    UNION ALL
    SELECT source.name, source.type, count(*) FROM (
        SELECT arg_max({'name': callee, 'type': callee_type}, start_ns) AS source
        FROM throttled_calls c WHERE c.start_ns >= ? AND c.start_ns < ? {filter}
        GROUP BY trace_id
    ) GROUP BY ALL
) GROUP BY ALL ORDER BY traces DESC, name LIMIT ?
"""

# Analytics: figures per {key} (a time bucket, or a field's value) of the calls in {scope}.
BY_KEY: Final = f"""{PICKED}
SELECT {{key}} AS key, {_FIGURES_OF_ROWS}
FROM picked WHERE {{scope}}
GROUP BY key, bucket ORDER BY key
"""

ROLLED_UNTIL: Final = "SELECT max(rolled_until) FROM rollup_state"
# A group's map reads raw only the calls past its rollup, of traces rooted this shortly before
# them (a trace's calls that come later than this after its root count in the rollup only).
TAIL_ROOTS_NS: Final = MINUTE_NS
CLOCK_SKEW_NS: Final = 5 * 10**9  # how much earlier than its root a span may say it started


@dataclass(frozen=True, slots=True)
class GroupRollup:
    """A group's rollup (storage/group_rollup.py): its id and the whole minutes it holds."""

    group_id: int
    rolled_from: int
    rolled_until: int


_GROUP_KEYS: Final = {"function_version": "coalesce(function_version, '$LATEST')", "cold_start": "cold_start"}


def _filtered(
    template: str, window: TimeWindow, expr: ast.Expr | None, spans_from: tuple[int, int] | None = None
) -> tuple[str, tuple[Any, ...]]:
    """The template with its roots CTE and trace filter filled in, and the filter's parameters
    (`spans_from`: where the filter looks for the traces' spans, by default span_window's)."""
    filter_text, params = "", ()
    if expr is not None:
        predicate = compile_trace_predicate(expr, spans_from or span_window(window))
        filter_text, params = FILTER_TRACES.format(predicate=predicate.text), predicate.params
    return template.replace("{roots}", ROOTS_CTE).replace("{filter}", filter_text), params


def picked_statement(template: str, window: TimeWindow, expr: ast.Expr | None, *extra: Any) -> Statement:
    """A statement over the calls of the window (of traces matching `expr`); `extra` binds what follows."""
    text, filter_params = _filtered(template, window, expr)
    # roots' own window parameters come first: the CTE is the first placeholder user.
    return Statement(text, (window.start_ns, window.end_ns, window.start_ns, window.end_ns, *filter_params, *extra))


def rolled_minutes(window: TimeWindow, expr: ast.Expr | None, rolled_until_ns: int) -> tuple[int, int]:
    """[lo, hi): the window's whole minutes the rollup holds (empty when a filter needs every call)."""
    low = -(-window.start_ns // MINUTE_NS) * MINUTE_NS
    high = min(window.end_ns // MINUTE_NS * MINUTE_NS, rolled_until_ns)
    if expr is not None or high <= low:
        return window.start_ns, window.start_ns
    return low, high


def group_minutes(window: TimeWindow, rolled: GroupRollup) -> tuple[int, int]:
    """[lo, hi): the minutes a group's rollup serves, from the one the window starts in (counted
    whole: the raw part is then only the tail, whose traces are few) up to the rollup's end."""
    low = max(window.start_ns // MINUTE_NS * MINUTE_NS, rolled.rolled_from)
    high = min(window.end_ns // MINUTE_NS * MINUTE_NS, rolled.rolled_until)
    return (low, high) if high > low else (window.start_ns, window.start_ns)


def group_throttle_statement(window: TimeWindow, expr: ast.Expr, group: GroupRollup, limit: int) -> Statement:
    """Throttle sources of a group: from its rollup for the minutes it holds, raw after them."""
    low, high = group_minutes(window, group)
    roots, spans_from = _tail_roots(window, high)
    template = GROUP_THROTTLE_SOURCES.replace("{group_id}", str(int(group.group_id)))
    text, filter_params = _filtered(template, roots, expr, spans_from)
    return Statement(
        text, (roots.start_ns, roots.end_ns, low, high, max(high, low), window.end_ns, *filter_params, limit)
    )


def _tail_roots(window: TimeWindow, high: int) -> tuple[TimeWindow, tuple[int, int]]:
    """Roots and span range for the raw calls after a group's rollup: the traces rooted shortly
    before them, from their roots on (not a whole window of spans)."""
    roots = TimeWindow(max(window.start_ns, high - TAIL_ROOTS_NS), window.end_ns)
    return roots, (roots.start_ns - CLOCK_SKEW_NS, span_window(roots)[1])


def _for_group(template: str, group_id: int) -> str:
    """The HOP_ROWS template reading a group's rollup instead of the main one."""
    return template.replace(
        "FROM call_minutes WHERE", f"FROM group_minutes WHERE group_id = {int(group_id)} AND"
    ).replace("FROM latency_minutes WHERE", f"FROM group_latency_minutes WHERE group_id = {int(group_id)} AND")


def hops_statement(
    window: TimeWindow,
    expr: ast.Expr | None,
    rolled_until_ns: int,
    max_rows: int,
    group: GroupRollup | None = None,
) -> Statement:
    """The HOP_ROWS statement: rolled-up whole minutes (the main rollup's, or with `group` and
    `expr` its filter, the group's), raw calls for the head and tail of the window."""
    template, roots, spans_from = HOP_ROWS, window, None
    if group is not None and expr is not None:
        low, high = group_minutes(window, group)
        template = _for_group(template, group.group_id)
        if high > low:  # only the tail's calls (the minutes not rolled yet) are read raw
            roots, spans_from = _tail_roots(window, high)
    else:
        low, high = rolled_minutes(window, expr, rolled_until_ns)
    text, raw_filter = _filtered(template, roots, expr, spans_from)
    params = (
        *(roots.start_ns, roots.end_ns),  # roots
        *(window.start_ns, low, *raw_filter),  # the head
        *(max(high, low), window.end_ns, *raw_filter),  # the tail
        *(low, high, low, high),  # the rollup's counts, its latency
        max_rows,
        max_rows,
    )
    return Statement(text, params)


def subject_condition(subject: Subject) -> Statement:
    """Which calls of the window an analytics subject covers."""
    if subject.node is None:
        return Statement("role = 'entry' AND caller IS NULL")
    parts = ["callee = ?"]
    params: list[Any] = [subject.node]
    if subject.node_type:
        parts.append("coalesce(callee_type, 'service') = ?")
        params.append(subject.node_type)
    if subject.caller is None:
        parts.insert(0, "role IN ('entry', 'inferred')")
        return Statement(" AND ".join(parts), tuple(params))
    parts.insert(0, "role IN ('entry', 'inferred', 'link') AND caller = ?")
    params.insert(0, subject.caller)
    if subject.caller_type:
        parts.append("coalesce(caller_type, ?) = ?")
        params += [subject.caller_type, subject.caller_type]
    return Statement(" AND ".join(parts), tuple(params))


def grouping_key(grouping: Grouping) -> Statement:
    """The SQL expression an analytics grouping keys calls by."""
    if isinstance(grouping, ByTimeBucket):
        return Statement("(start_ns - ?) // ?", (grouping.start_ns, grouping.step_ns))
    if isinstance(grouping, ByField):
        return Statement(_GROUP_KEYS[grouping.field])
    return Statement("true")


def figures_statement(window: TimeWindow, expr: ast.Expr | None, subject: Subject, grouping: Grouping) -> Statement:
    """Figure rows per group key of the subject's calls in the window."""
    key, scope = grouping_key(grouping), subject_condition(subject)
    template = BY_KEY.replace("{key}", key.text).replace("{scope}", scope.text)
    statement = picked_statement(template, window, expr, *key.params)
    return Statement(statement.text, (*statement.params, *scope.params))
