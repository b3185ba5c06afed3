"""SQL that resolves the service map's hops at ingest, so map queries never self-join spans.

A self-join of ``spans`` on parent_span_id costs ~1 s at 10M spans (DESIGN.md §8), so each
write also maintains ``calls``: one row per hop the map draws, carrying the callee's figures.

- ``entry``: a span whose parent is on another node (or that has no parent: caller NULL),
  i.e. the moment a request enters a service. Nodes are (service, origin); a span without an
  origin belongs to its service's node.
- ``inferred``: a client span calling something not instrumented (its target: a DynamoDB table,
  an SQS queue, a host). Removed again when an instrumented callee turns up as its child,
  unless the target is a queue, stream or bus, which stays on the map between the two.
- ``link``: a consumer span linked to the producer span of a message: queue -> consumer,
  async, with the message's dwell time (consumer start - producer end).
- ``init``: a Lambda ``Initialization`` span (cold-start init duration).

Parents and producers often arrive after their children (another process, a later export),
or before them (an earlier export). Each write resolves its new spans against spans stored in
the last LOOKBACK_NS, and new spans against ``pending``: the children still waiting for their
parent. Pending rows that wait longer than the horizon become entries with an unknown caller.
Table names in ``{fresh}``/``{fresh_links}`` are constants chosen by the store, never input.
"""

from __future__ import annotations

from typing import Final

from collector.storage import rollup_sql

# A parent stored up to 30 s before its child starts. Scanned every link run, so it costs;
# a parent that ends after its child (any synchronous call) is found from the other side.
LOOKBACK_NS: Final = 30 * 10**9
SKEW_NS: Final = 10 * 10**9  # clocks of different processes (and X-Ray's float seconds) disagree
ASYNC_TARGET_TYPES: Final = (
    "'AWS::SQS::Queue', 'AWS::Kinesis::Stream', 'AWS::Events::EventBus', 'AWS::SNS::Topic', "
    "'AWS::StepFunctions::StateMachine', 'queue'"
)
# Targets that stay between a producer and the consumer its call triggered: the async ones,
# and S3 buckets, whose event notifications carry the uploader's trace to the function.
VIA_TARGET_TYPES: Final = ASYNC_TARGET_TYPES + ", 'AWS::S3::Bucket'"
INIT_SPAN: Final = "'Initialization'"

CALL_COLUMNS: Final = """
    trace_id UUID NOT NULL,
    span_id UBIGINT NOT NULL,
    parent_span_id UBIGINT,
    start_ns BIGINT NOT NULL,
    role VARCHAR NOT NULL,
    caller VARCHAR,
    caller_type VARCHAR,
    callee VARCHAR NOT NULL,
    callee_type VARCHAR,
    async BOOLEAN NOT NULL,
    duration_ns BIGINT NOT NULL,
    error BOOLEAN NOT NULL,
    fault BOOLEAN NOT NULL,
    throttle BOOLEAN NOT NULL,
    cold_start BOOLEAN NOT NULL,
    init_ns BIGINT,
    dwell_ns BIGINT,
    linked BOOLEAN NOT NULL,
    function_version VARCHAR
"""

# What a child needs to become a call: kept in `pending` while its parent is missing.
_CHILD = """trace_id, span_id, parent_span_id, start_ns, service, origin, duration_ns, error, fault,
    throttle, coalesce(cold_start, false) AS cold_start, function_version, linked"""

PENDING_COLUMNS: Final = """
    trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, parent_span_id UBIGINT, start_ns BIGINT NOT NULL,
    service VARCHAR NOT NULL, origin VARCHAR, duration_ns BIGINT NOT NULL, error BOOLEAN NOT NULL,
    fault BOOLEAN NOT NULL, throttle BOOLEAN NOT NULL, cold_start BOOLEAN NOT NULL, function_version VARCHAR,
    linked BOOLEAN NOT NULL, want_trace_id UUID NOT NULL, want_span_id UBIGINT NOT NULL,
    relation VARCHAR NOT NULL, since_ns BIGINT NOT NULL
"""

# What linking reads of a span (the writer keeps these columns of each write until it links).
LINKED_SPAN_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "error",
    "fault",
    "throttle",
    "cold_start",
    "origin",
    "target_type",
    "target_name",
    "function_version",
    "in_progress",
)

MIGRATION: Final = (
    f"CREATE TABLE calls ({CALL_COLUMNS})",
    f"CREATE TABLE pending ({PENDING_COLUMNS})",
    # The throttled calls again, apart: throttles are rare and scattered, and finding their
    # source in `calls` meant decompressing every trace id of the window.
    """CREATE TABLE throttled_calls (trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, start_ns BIGINT NOT NULL,
        role VARCHAR NOT NULL, callee VARCHAR NOT NULL, callee_type VARCHAR)""",
)

# --- one write. `fresh` holds the spans this write stored, `fresh_links` their links.
CREATE_FRESH_SPANS: Final = """
    CREATE OR REPLACE TEMP TABLE fresh_spans AS
    SELECT f.*, f.span_id IN (SELECT span_id FROM {fresh_links} l WHERE l.trace_id = f.trace_id) AS linked
    FROM {fresh} f WHERE NOT f.in_progress
"""
CREATE_FRESH_SPANS_WITHOUT_LINKS: Final = """
    CREATE OR REPLACE TEMP TABLE fresh_spans AS SELECT f.*, false AS linked FROM {fresh} f WHERE NOT f.in_progress
"""

CREATE_WANTS: Final = f"""
    CREATE OR REPLACE TEMP TABLE wants AS
    SELECT {_CHILD}, trace_id AS want_trace_id, parent_span_id AS want_span_id, 'parent' AS relation
    FROM fresh_spans WHERE parent_span_id IS NOT NULL AND name <> {INIT_SPAN}
    UNION ALL
    SELECT f.trace_id, f.span_id, f.parent_span_id, f.start_ns, f.service, f.origin, f.duration_ns, f.error,
           f.fault, f.throttle, coalesce(f.cold_start, false), f.function_version, true,
           l.linked_trace_id, l.linked_span_id, 'link'
    FROM {{fresh_links}} l JOIN fresh_spans f ON f.trace_id = l.trace_id AND f.span_id = l.span_id
"""

_PARTNER = """p.service AS p_service, p.origin AS p_origin, p.target_type AS p_target_type,
    p.target_name AS p_target_name, p.start_ns AS p_start_ns, p.duration_ns AS p_duration_ns"""

# New children and consumers find partners among this run's spans first (most parents arrive
# within the same second as their children), and only the rest among stored spans: that range
# scan covered LOOKBACK_NS of ingest on every run, ~40 spans read for each span linked at a
# steady rate (bench/ingest.py). Stored children waiting in `pending` find them among this
# run's spans. (trace_id, span_id) is unique in both, so no want is paired twice.
_WITHIN_LOOKBACK = f"p.start_ns BETWEEN w.start_ns - {LOOKBACK_NS} AND w.start_ns + {SKEW_NS}"
# p_stored: the partner was linked by an earlier run, so its own calls are in `calls` already.
_IN_RUN_PAIRS = f"""
    SELECT w.*, {_PARTNER}, false AS p_stored
    FROM wants w JOIN fresh_spans p ON p.trace_id = w.want_trace_id AND p.span_id = w.want_span_id
    WHERE {_WITHIN_LOOKBACK}
"""
CREATE_PAIRS_WITHOUT_PENDING: Final = f"CREATE OR REPLACE TEMP TABLE pairs AS {_IN_RUN_PAIRS}"
CREATE_PAIRS: Final = f"""
    CREATE OR REPLACE TEMP TABLE pairs AS {_IN_RUN_PAIRS}
    UNION ALL
    SELECT w.* EXCLUDE (since_ns), {_PARTNER}, false
    FROM pending w JOIN fresh_spans p ON p.trace_id = w.want_trace_id AND p.span_id = w.want_span_id
"""
# Most runs find nothing waiting (every parent came with its children): then the statements
# about `pending` are skipped, a tenth of a run's fixed cost.
COUNT_PENDING: Final = "SELECT count(*) FROM pending"
_UNPAIRED = """wants w ANTI JOIN pairs p
      ON w.trace_id = p.trace_id AND w.span_id = p.span_id AND w.relation = p.relation
     AND w.want_span_id = p.want_span_id"""
WANTS_BOUNDS: Final = f"SELECT min(w.start_ns), max(w.start_ns), count(*) FROM {_UNPAIRED}"
ADD_STORED_PAIRS: Final = f"""
    INSERT INTO pairs
    SELECT w.*, {_PARTNER}, true
    FROM (SELECT w.* FROM {_UNPAIRED}) w JOIN spans p ON p.trace_id = w.want_trace_id AND p.span_id = w.want_span_id
    WHERE p.start_ns BETWEEN ? AND ? AND {_WITHIN_LOOKBACK}
"""

DELETE_RESOLVED_PENDING: Final = """
    DELETE FROM pending d USING pairs p
    WHERE d.trace_id = p.trace_id AND d.span_id = p.span_id AND d.relation = p.relation
      AND d.want_span_id = p.want_span_id
"""

INSERT_PENDING: Final = f"INSERT INTO pending SELECT w.*, ? FROM {_UNPAIRED}"

# A child is on another node when the service differs, or both carry different origins
# (X-Ray's AWS::Lambda segment parenting its AWS::Lambda::Function segment of the same name).
_OTHER_NODE = "(c.service <> c.p_service OR coalesce(c.origin <> c.p_origin, false))"
_VIA_TARGET = f"""coalesce(c.p_target_type IN ({VIA_TARGET_TYPES})
    AND NOT (c.p_target_name = c.service AND c.p_target_type IS NOT DISTINCT FROM c.origin), false)"""
_FIGURES = "duration_ns, error, fault, throttle, coalesce(cold_start, false)"

# Entries: spans entering a node, from no parent or from a partner on another node.
_ENTRIES = f"""
    SELECT c.trace_id, c.span_id, c.parent_span_id, c.start_ns, 'entry' AS role, NULL AS caller,
           NULL AS caller_type, c.service AS callee, c.origin AS callee_type, false AS async,
           c.duration_ns, c.error, c.fault, c.throttle, coalesce(c.cold_start, false) AS cold_start,
           NULL::BIGINT AS dwell_ns, c.linked, c.function_version
    FROM fresh_spans c WHERE c.parent_span_id IS NULL AND c.name <> {INIT_SPAN}
    UNION ALL
    SELECT c.trace_id, c.span_id, c.parent_span_id, c.start_ns,
           CASE WHEN c.relation = 'parent' THEN 'entry' ELSE 'link' END,
           CASE WHEN {_VIA_TARGET} THEN c.p_target_name ELSE c.p_service END,
           CASE WHEN {_VIA_TARGET} THEN c.p_target_type ELSE c.p_origin END,
           c.service, c.origin,
           c.relation = 'link' OR coalesce(c.p_target_type IN ({VIA_TARGET_TYPES}), false),
           c.duration_ns, c.error, c.fault, c.throttle, c.cold_start,
           CASE WHEN c.relation = 'link' OR {_VIA_TARGET} THEN c.start_ns - (c.p_start_ns + c.p_duration_ns) END,
           c.linked, c.function_version
    FROM pairs c WHERE c.relation = 'link' OR {_OTHER_NODE}
"""
_INFERRED = f"""
    SELECT trace_id, span_id, parent_span_id, start_ns, 'inferred', service, origin, target_name, target_type,
           kind = 'PRODUCER' OR target_type IN ({ASYNC_TARGET_TYPES}), {_FIGURES}, NULL, NULL, linked,
           function_version
    FROM fresh_spans WHERE target_type IS NOT NULL AND target_name IS NOT NULL
"""
_ENTRY_COLUMNS = """e.trace_id, e.span_id, e.parent_span_id, e.start_ns, e.role, e.caller, e.caller_type, e.callee,
    e.callee_type, e.async, e.duration_ns, e.error, e.fault, e.throttle, e.cold_start"""

# Every call of the run in one statement (DuckDB's fixed cost per statement dominates a small
# run). Init duration of a cold start: the Initialization span beside the handler span (same
# parent: OpenTelemetry) or under it (X-Ray's subsegment), looked up in this run only: a
# runtime exports the two together (its init counts in the node's init figures either way).
INSERT_CALLS: Final = f"""
INSERT INTO new_calls SELECT * FROM (
    WITH inits AS (
        SELECT trace_id, service, parent_span_id, max(duration_ns) AS init_ns
        FROM fresh_spans WHERE name = {INIT_SPAN} GROUP BY ALL
    ), entries AS ({_ENTRIES})
    SELECT {_ENTRY_COLUMNS},
           CASE WHEN e.cold_start AND e.role = 'entry' THEN coalesce(i1.init_ns, i2.init_ns) END,
           e.dwell_ns, e.linked, e.function_version
    FROM entries e
    LEFT JOIN inits i1 ON i1.trace_id = e.trace_id AND i1.service = e.callee
                      AND i1.parent_span_id IS NOT DISTINCT FROM e.parent_span_id
    LEFT JOIN inits i2 ON i2.trace_id = e.trace_id AND i2.service = e.callee AND i2.parent_span_id = e.span_id
    UNION ALL
    SELECT trace_id, span_id, parent_span_id, start_ns, 'init', NULL, NULL, service, origin, false, {_FIGURES},
           duration_ns, NULL, false, function_version
    FROM fresh_spans WHERE name = {INIT_SPAN}
    UNION ALL {_INFERRED}
)
"""
COUNT_INITS: Final = f"SELECT count(*) FROM fresh_spans WHERE name = {INIT_SPAN}"
# The same for a run without Initialization spans (most: cold starts are rare), which spares
# the statement the two joins (a fifth of a run's fixed cost, bench/ingest.py).
INSERT_CALLS_WITHOUT_INITS: Final = f"""
INSERT INTO new_calls SELECT * FROM (
    SELECT {_ENTRY_COLUMNS}, NULL::BIGINT, e.dwell_ns, e.linked, e.function_version FROM ({_ENTRIES}) e
    UNION ALL {_INFERRED}
)
"""

# The client span's guess at its target gives way to the instrumented callee it reached.
_SUPERSEDING = f"""c.relation = 'parent' AND c.p_target_type IS NOT NULL AND {_OTHER_NODE}
    AND NOT {_VIA_TARGET}"""
# Superseded guesses of this run are still in new_calls only; those of stored partners are in
# `calls` (and maybe the rollup), whose statements scan a range of it: they run only when needed.
CREATE_SUPERSEDED: Final = f"""
    CREATE OR REPLACE TEMP TABLE superseded AS
    SELECT DISTINCT c.want_trace_id AS trace_id, c.want_span_id AS span_id, c.p_start_ns AS start_ns, c.p_stored
    FROM pairs c WHERE {_SUPERSEDING}
"""
COUNT_SUPERSEDED: Final = """
    SELECT count(*), count(*) FILTER (WHERE p_stored), min(start_ns) FILTER (WHERE p_stored),
           max(start_ns) FILTER (WHERE p_stored)
    FROM superseded
"""
_SUPERSEDED_KEYS = (
    "role = 'inferred' AND (trace_id, span_id, start_ns) IN (SELECT (trace_id, span_id, start_ns) FROM superseded)"
)
_SUPERSEDED = f"start_ns BETWEEN ? AND ? AND {_SUPERSEDED_KEYS}"
# Stored calls about to be deleted that the rollup already counted are taken back out of it.
_RETRACTED = f"{_SUPERSEDED} AND start_ns < (SELECT rolled_until FROM rollup_state)"
RETRACT_SUPERSEDED: Final = (
    rollup_sql.name_new_hops("calls", _RETRACTED),
    *rollup_sql.rollup_insert("calls", _RETRACTED, sign=-1),
)
DELETE_NEW_SUPERSEDED: Final = f"DELETE FROM new_calls WHERE {_SUPERSEDED_KEYS}"
DELETE_STORED_SUPERSEDED: Final = (
    f"DELETE FROM calls WHERE {_SUPERSEDED}",
    f"DELETE FROM throttled_calls WHERE {_SUPERSEDED}",
)

# The write's calls join the table; those older than the rollup's watermark are added to it too.
CREATE_NEW_CALLS: Final = f"CREATE OR REPLACE TEMP TABLE new_calls ({CALL_COLUMNS})"
INSERT_NEW_CALLS: Final = (
    "INSERT INTO calls SELECT * FROM new_calls",
    """INSERT INTO throttled_calls SELECT trace_id, span_id, start_ns, role, callee, callee_type
       FROM new_calls WHERE throttle AND role IN ('entry', 'inferred')""",
)
COUNT_LATE_CALLS: Final = "SELECT count(*) FROM new_calls WHERE start_ns < (SELECT rolled_until FROM rollup_state)"
_LATE = "start_ns < (SELECT rolled_until FROM rollup_state)"
ROLL_UP_LATE_CALLS: Final = (
    rollup_sql.name_new_hops("new_calls", _LATE),
    *rollup_sql.rollup_insert("new_calls", _LATE),
)
DROP_NEW_CALLS: Final = "DROP TABLE IF EXISTS new_calls"

DROP_TEMPORARIES: Final = (
    "DROP TABLE IF EXISTS superseded",
    "DROP TABLE IF EXISTS pairs",
    "DROP TABLE IF EXISTS wants",
    "DROP TABLE IF EXISTS fresh_spans",
)

# --- housekeeping: children whose parent never came are entries from an unknown caller.
EXPIRE_PENDING: Final = (
    """INSERT INTO new_calls
       SELECT trace_id, span_id, parent_span_id, start_ns, 'entry', NULL, NULL, service, origin, false,
              duration_ns, error, fault, throttle, cold_start, NULL, NULL, linked, function_version
       FROM pending WHERE since_ns < ? AND relation = 'parent'""",
    "DELETE FROM pending WHERE since_ns < ?",
)

DELETE_CALLS_OLDER_THAN: Final = (
    "DELETE FROM calls WHERE start_ns < ?",
    "DELETE FROM throttled_calls WHERE start_ns < ?",
    "DELETE FROM pending WHERE start_ns < ?",
)
