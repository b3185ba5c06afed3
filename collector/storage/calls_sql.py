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
Table names given as `source` are constants chosen by duckdb_calls.py, never input.
"""

from __future__ import annotations

from typing import Final

from collector.storage import rollup_sql

# A parent stored up to 30 s before its child starts. Scanned every link run, so it costs;
# a parent that ends after its child (any synchronous call) is found from the other side.
LOOKBACK_NS: Final = 30 * 10**9
SKEW_NS: Final = 10 * 10**9  # clocks of different processes (and X-Ray's float seconds) disagree
ASYNC_TYPES: Final = (
    "AWS::SQS::Queue",
    "AWS::Kinesis::Stream",
    "AWS::Events::EventBus",
    "AWS::SNS::Topic",
    "AWS::StepFunctions::StateMachine",
    "queue",
)
# Targets that stay between a producer and the consumer its call triggered: the async ones,
# and S3 buckets, whose event notifications carry the uploader's trace to the function.
VIA_TYPES: Final = (*ASYNC_TYPES, "AWS::S3::Bucket")
INIT_NAME: Final = "Initialization"

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

# What a child needs to become a call (run_links.WANT_COLUMNS): kept while its parent is missing.
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

# --- one link run. run_links.py pairs the run's spans among themselves; what is left is here.
_PARTNER = """p.service AS p_service, p.origin AS p_origin, p.target_type AS p_target_type,
    p.target_name AS p_target_name, p.start_ns AS p_start_ns, p.duration_ns AS p_duration_ns"""
_WITHIN_LOOKBACK = f"p.start_ns BETWEEN w.start_ns - {LOOKBACK_NS} AND w.start_ns + {SKEW_NS}"
# Stored children waiting in `pending` find their partners among the run's spans (`run_partners`).
# Most runs find nothing waiting (every parent came with its children): then these are skipped.
COUNT_PENDING: Final = "SELECT count(*) FROM pending"
PENDING_PAIRS: Final = f"""
    SELECT w.* EXCLUDE (since_ns), {_PARTNER}, false AS p_stored
    FROM pending w JOIN run_partners p ON p.trace_id = w.want_trace_id AND p.span_id = w.want_span_id
"""
DELETE_PAIRED_PENDING: Final = """
    DELETE FROM pending d USING run_partners p WHERE p.trace_id = d.want_trace_id AND p.span_id = d.want_span_id
"""
# The run's children without a partner in it look among stored spans (p_stored: the partner was
# linked by an earlier run, so its own calls are in `calls` already); the rest wait in `pending`.
STORED_PAIRS: Final = f"""
    SELECT w.*, {_PARTNER}, true AS p_stored
    FROM unpaired_wants w JOIN spans p ON p.trace_id = w.want_trace_id AND p.span_id = w.want_span_id
    WHERE p.start_ns BETWEEN ? AND ? AND {_WITHIN_LOOKBACK}
"""
INSERT_PENDING: Final = "INSERT INTO pending SELECT w.*, ? FROM unpaired_wants w"
INSERT_PENDING_BUT_STORED_PAIRS: Final = """
    INSERT INTO pending SELECT w.*, ? FROM unpaired_wants w ANTI JOIN stored_pairs p
      ON w.trace_id = p.trace_id AND w.span_id = p.span_id AND w.relation = p.relation
     AND w.want_span_id = p.want_span_id
"""

# Superseded guesses of stored partners (call_rows.superseding) are in `calls` (and maybe the
# rollup), in `superseded` (trace_id, span_id, start_ns): their statements scan a range of it.
_SUPERSEDED = (
    "start_ns BETWEEN ? AND ? AND role = 'inferred' "
    "AND (trace_id, span_id, start_ns) IN (SELECT (trace_id, span_id, start_ns) FROM superseded)"
)
# Stored calls about to be deleted that the rollup already counted are taken back out of it.
_RETRACTED = f"{_SUPERSEDED} AND start_ns < (SELECT rolled_until FROM rollup_state)"
RETRACT_SUPERSEDED: Final = (
    rollup_sql.name_new_hops("calls", _RETRACTED),
    *rollup_sql.rollup_insert("calls", _RETRACTED, sign=-1),
)
DELETE_STORED_SUPERSEDED: Final = (
    f"DELETE FROM calls WHERE {_SUPERSEDED}",
    f"DELETE FROM throttled_calls WHERE {_SUPERSEDED}",
)


# New calls (a table or registered Arrow named `source`) join `calls`; those older than the
# rollup's watermark are added to it too.
def insert_calls(source: str) -> str:
    return f"INSERT INTO calls SELECT * FROM {source}"


def insert_throttled(source: str) -> str:
    return f"""INSERT INTO throttled_calls SELECT trace_id, span_id, start_ns, role, callee, callee_type
       FROM {source} WHERE throttle AND role IN ('entry', 'inferred')"""


_LATE = "start_ns < (SELECT rolled_until FROM rollup_state)"


def count_late(source: str) -> str:
    return f"SELECT count(*) FROM {source} WHERE {_LATE}"


def roll_up_late(source: str) -> tuple[str, ...]:
    return (rollup_sql.name_new_hops(source, _LATE), *rollup_sql.rollup_insert(source, _LATE))


CREATE_NEW_CALLS: Final = f"CREATE OR REPLACE TEMP TABLE new_calls ({CALL_COLUMNS})"
DROP_NEW_CALLS: Final = "DROP TABLE IF EXISTS new_calls"

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
