"""The SQL behind the service map, throttle forensics and analytics: aggregates over ``calls``.

``calls`` holds one row per hop, resolved at ingest (collector/storage/calls_sql.py), so none
of these statements joins spans to spans. Every statement starts from ``picked``: the calls in
the window (optionally of traces matching a filter), with each untyped node resolved to its
service's type (an internal span stands for its service's node; of a service's types the
function's own view wins over the AWS::Lambda service view). ``{roots}`` and ``{filter}`` are
filled by collector.query with fixed fragments; values are bound parameters.
"""

from __future__ import annotations

from typing import Final

# Log-spaced response-time buckets: bucket k holds durations in [10^(k/4), 10^((k+1)/4)) ms.
BUCKETS_PER_DECADE: Final = 4
_BUCKET = f"floor(log10(greatest(duration_ns, 1000) / 1e6) * {BUCKETS_PER_DECADE})::INTEGER"

PICKED: Final = """
WITH {roots}, raw AS (
    SELECT * FROM calls c WHERE c.start_ns >= ? AND c.start_ns < ? {filter}
), types AS (
    SELECT callee AS name, arg_max(callee_type, CASE WHEN callee_type = 'AWS::Lambda' THEN 0 ELSE 1 END) AS type
    FROM raw WHERE role = 'entry' AND callee_type IS NOT NULL GROUP BY callee
), picked AS (
    SELECT raw.* REPLACE (
        CASE WHEN raw.caller IS NULL THEN NULL ELSE coalesce(raw.caller_type, tc.type, 'service') END AS caller_type,
        coalesce(raw.callee_type, te.type, 'service') AS callee_type)
    FROM raw LEFT JOIN types tc ON tc.name = raw.caller LEFT JOIN types te ON te.name = raw.callee
)"""

FILTER_TRACES: Final = "AND c.trace_id IN (SELECT r.trace_id FROM roots r WHERE {predicate})"

_FIGURES = f"""count(*) AS requests, sum((NOT (error OR fault OR throttle))::INTEGER),
    sum(error::INTEGER), sum(fault::INTEGER), sum(throttle::INTEGER),
    quantile_cont(duration_ns, [0.5, 0.9, 0.99]), histogram({_BUCKET}), sum(cold_start::INTEGER)"""

EDGES: Final = f"""{PICKED}
SELECT caller, caller_type, callee, callee_type, role = 'link' OR async AS is_async, {_FIGURES},
       quantile_cont(dwell_ns, [0.5, 0.9, 0.99]) FILTER (WHERE dwell_ns IS NOT NULL)
FROM picked
WHERE role IN ('entry', 'inferred', 'link') AND NOT (role = 'entry' AND caller IS NULL AND linked)
GROUP BY ALL ORDER BY requests DESC, callee, caller LIMIT ?
"""

# Cold-start share of the tail: of the requests at or beyond the node's p99 (time a caller
# waits: init + handler), the fraction spent initializing.
NODES: Final = f"""{PICKED}, served AS (
    SELECT *, duration_ns + coalesce(init_ns, 0) AS waited_ns FROM picked WHERE role IN ('entry', 'inferred')
), tail AS (
    SELECT callee, callee_type, quantile_cont(waited_ns, 0.99) AS p99_ns FROM served GROUP BY ALL
), tail_share AS (
    SELECT s.callee, s.callee_type, sum(coalesce(s.init_ns, 0)) / sum(s.waited_ns) AS share
    FROM served s JOIN tail t ON t.callee = s.callee AND t.callee_type = s.callee_type
    WHERE s.waited_ns >= t.p99_ns GROUP BY ALL
), inits AS (
    SELECT callee, callee_type, quantile_cont(duration_ns, [0.5, 0.99]) AS init_q, count(*) AS inits
    FROM picked WHERE role = 'init' GROUP BY ALL
)
SELECT s.callee, s.callee_type, {_FIGURES}, any_value(i.init_q), any_value(i.inits), any_value(ts.share),
       bool_and(s.role = 'inferred')
FROM served s
LEFT JOIN inits i ON i.callee = s.callee AND i.callee_type = s.callee_type
LEFT JOIN tail_share ts ON ts.callee = s.callee AND ts.callee_type = s.callee_type
GROUP BY s.callee, s.callee_type ORDER BY requests DESC, s.callee LIMIT ?
"""

# Where each throttled trace's 429 started: its throttled hop that began last (the deepest in a
# synchronous chain: a gateway's own limit, the function's concurrency, a downstream AWS call).
THROTTLE_SOURCES: Final = f"""{PICKED}
SELECT source.name, source.type, count(*) AS traces FROM (
    SELECT arg_max({{'name': callee, 'type': callee_type}}, start_ns) AS source
    FROM picked WHERE throttle AND role IN ('entry', 'inferred') GROUP BY trace_id
) GROUP BY ALL ORDER BY traces DESC, source.name
"""

# Time series: one row per step bucket of the chosen calls.
SERIES: Final = f"""{PICKED}
SELECT (start_ns - ?) // ? AS bucket, {_FIGURES}
FROM picked WHERE {{scope}}
GROUP BY bucket ORDER BY bucket
"""

SUMMARY: Final = f"""{PICKED}
SELECT {{group}} AS key, {_FIGURES}
FROM picked WHERE {{scope}}
GROUP BY key ORDER BY key
"""
