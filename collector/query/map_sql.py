"""The SQL behind the service map, throttle forensics and analytics: aggregates over ``calls``.

``calls`` holds one row per hop, resolved at ingest (collector/storage/calls_sql.py), so none
of these statements joins spans to spans. Each aggregates the calls in the window (optionally
of traces matching a filter) by its key *and a latency bucket*: 20 log-spaced buckets per
decade with each bucket's count, min and max. Percentiles and histograms come from those
rows in Python (collector.query.figures): one hash aggregate with plain sums instead of exact
per-group quantiles costs a fraction of the time at 10M spans (bench/query.py), groups merge
exactly (an untyped caller folds into its service's node after the query), and a percentile
is exact whenever its bucket holds one distinct value, else within that bucket's bounds.
``{roots}``, ``{filter}``, ``{key}`` and ``{scope}`` are filled with fixed fragments by
collector.query; values are bound parameters. Whole minutes of the map come from the per-minute
rollup (collector/storage/rollup_sql.py), so its cost follows minutes x hops, not calls.
"""

from __future__ import annotations

from typing import Final

from collector.storage.rollup_sql import (
    BUCKETS_PER_DECADE,
    CONSUMED,
    DWELL_BUCKET,
    HOP_KEY,
    INIT_WAITED,
    LATENCY_BUCKET,
    WAITED,
)

__all__ = ["BUCKETS_PER_DECADE", "BY_KEY", "FILTER_TRACES", "HOP_COUNTS", "HOP_LATENCY", "PICKED", "THROTTLE_SOURCES"]

PICKED: Final = f"""
WITH {{roots}}, picked AS (
    SELECT *, {WAITED} AS waited_ns FROM calls c WHERE c.start_ns >= ? AND c.start_ns < ? {{filter}}
)"""

FILTER_TRACES: Final = "AND c.trace_id IN (SELECT r.trace_id FROM roots r WHERE {predicate})"

# The figure columns every aggregate ends with, in the order FigureAccumulator.add reads them.
_FIGURES_OF_ROWS = f"""{LATENCY_BUCKET} AS bucket, count(*), sum((NOT (error OR fault OR throttle))::INTEGER),
    sum(error::INTEGER), sum(fault::INTEGER), sum(throttle::INTEGER), sum(cold_start::INTEGER),
    sum({INIT_WAITED}), sum(waited_ns), min(waited_ns), max(waited_ns)"""

# The map reads the window's whole minutes up to the rollup's watermark, [lo, hi), from the
# rollup and every other call of the window from calls; the two parts come back as separate
# rows of the same shape, which the caller adds up (exactly: counts and sums add, min and max
# combine).
# Calls not in the rollup: the window's head [start, lo) and tail [hi, end), as two range
# scans (one scan with NOT BETWEEN could not skip row groups by their zone maps).
_RAW = f"""SELECT *, {WAITED} AS waited_ns, {CONSUMED} AS consumed, {LATENCY_BUCKET} AS bucket,
           {DWELL_BUCKET} AS dwell_bucket
    FROM calls c WHERE c.start_ns >= ? AND c.start_ns < ? {{filter}}"""
_MAP_PARTS = f"""
WITH {{roots}}, picked AS MATERIALIZED (
    {_RAW}
    UNION ALL
    {_RAW}
)"""
_HOP = "h.caller, h.caller_type, h.callee, h.callee_type, h.role, h.async, h.consumed"
_IN_ROLLED = "minute >= ? AND minute < ?"

# Rows: the hop key (7 columns), requests, ok, errors, faults, throttles, cold starts.
HOP_COUNTS: Final = f"""{_MAP_PARTS}, rolled AS (
    SELECT hop_id, sum(requests) AS requests, sum(ok) AS ok, sum(errors) AS errors, sum(faults) AS faults,
           sum(throttles) AS throttles, sum(cold) AS cold
    FROM call_minutes WHERE {_IN_ROLLED} GROUP BY hop_id
)
SELECT {_HOP}, r.* EXCLUDE (hop_id) FROM rolled r JOIN hop_keys h USING (hop_id) WHERE r.requests <> 0
UNION ALL
SELECT {HOP_KEY}, consumed, count(*), sum((NOT (error OR fault OR throttle))::INTEGER), sum(error::INTEGER),
       sum(fault::INTEGER), sum(throttle::INTEGER), sum(cold_start::INTEGER)
FROM picked GROUP BY {HOP_KEY}, consumed
LIMIT ?
"""

# Rows: the hop key (7 columns), kind (0 waited, 1 dwell), bucket, count, init ns, waited ns, min, max.
HOP_LATENCY: Final = f"""{_MAP_PARTS}, rolled AS (
    SELECT hop_id, kind, bucket, sum(requests) AS requests, sum(init_ns), sum(waited_ns), min(min_ns), max(max_ns)
    FROM latency_minutes WHERE {_IN_ROLLED} GROUP BY hop_id, kind, bucket
)
SELECT {_HOP}, r.* EXCLUDE (hop_id) FROM rolled r JOIN hop_keys h USING (hop_id) WHERE r.requests <> 0
UNION ALL
SELECT {HOP_KEY}, consumed, 0, bucket, count(*), sum({INIT_WAITED}), sum(waited_ns), min(waited_ns), max(waited_ns)
FROM picked GROUP BY {HOP_KEY}, consumed, bucket
UNION ALL
SELECT {HOP_KEY}, consumed, 1, dwell_bucket, count(*), 0, 0, min(dwell_ns), max(dwell_ns)
FROM picked WHERE dwell_bucket IS NOT NULL GROUP BY {HOP_KEY}, consumed, dwell_bucket
LIMIT ?
"""

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

# Analytics: figures per {key} (a time bucket, or a field's value) of the calls in {scope}.
BY_KEY: Final = f"""{PICKED}
SELECT {{key}} AS key, {_FIGURES_OF_ROWS}
FROM picked WHERE {{scope}}
GROUP BY key, bucket ORDER BY key
"""
