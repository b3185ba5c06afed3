"""The tables behind the service map's hops, and the statements that keep them.

A self-join of ``spans`` on parent_span_id costs ~1 s at 10M spans (DESIGN.md §8), so each
link run also maintains ``calls``: one row per hop the map draws, carrying the callee's
figures (collector/service_map/roles.py says which hops; its linker computes them). Storage
only reads what the linker asks for (stored partners, waiting children) and keeps what it
answers: the calls, ``pending`` (the children still waiting for their partner) and the
per-minute rollup. Table names given as `source` are constants chosen by duckdb_calls.py,
never input.
"""

from __future__ import annotations

from typing import Final

from collector.storage import rollup_sql

# parent_span_id is written NULL (insert_calls says why); the column stays so that files and
# lakes made before keep their layout.
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
    function_version VARCHAR,
    weight DOUBLE
"""

# What a child needs to become a call (roles.WANT_SCHEMA): kept while its partner is missing.
# As schema version 6 made it; version 10 added the child's sampling weight.
PENDING_COLUMNS_V6: Final = """
    trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, parent_span_id UBIGINT, start_ns BIGINT NOT NULL,
    service VARCHAR NOT NULL, origin VARCHAR, duration_ns BIGINT NOT NULL, error BOOLEAN NOT NULL,
    fault BOOLEAN NOT NULL, throttle BOOLEAN NOT NULL, cold_start BOOLEAN NOT NULL, function_version VARCHAR,
    linked BOOLEAN NOT NULL, init_ns BIGINT, want_trace_id UUID NOT NULL, want_span_id UBIGINT NOT NULL,
    relation VARCHAR NOT NULL, since_ns BIGINT NOT NULL
"""
PENDING_COLUMNS: Final = PENDING_COLUMNS_V6 + ", weight DOUBLE"

# pending with each child's init duration (a cold start's), so a parent that comes in a later
# run still finds it: schema version 6 rebuilds the table in that layout.
PENDING_INIT_MIGRATION: Final = (
    f"CREATE TABLE pending_v6 ({PENDING_COLUMNS_V6})",
    """INSERT INTO pending_v6 SELECT trace_id, span_id, parent_span_id, start_ns, service, origin, duration_ns,
       error, fault, throttle, cold_start, function_version, linked, NULL, want_trace_id, want_span_id, relation,
       since_ns FROM pending""",
    "DROP TABLE pending",
    "ALTER TABLE pending_v6 RENAME TO pending",
)

MIGRATION: Final = (
    f"CREATE TABLE calls ({CALL_COLUMNS})",
    f"CREATE TABLE pending ({PENDING_COLUMNS})",
    # The throttled calls again, apart: throttles are rare and scattered, and finding their
    # source in `calls` meant decompressing every trace id of the window.
    """CREATE TABLE throttled_calls (trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, start_ns BIGINT NOT NULL,
        role VARCHAR NOT NULL, callee VARCHAR NOT NULL, callee_type VARCHAR)""",
)

# --- one link run: what the linker asks for, and what it leaves to keep.
# Stored spans the run's unmet wants name (`wanted_keys`), within the range they can start in.
STORED_PARTNERS: Final = """
    SELECT p.trace_id, p.span_id, p.service, p.origin, p.target_type, p.target_name, p.start_ns, p.duration_ns
    FROM spans p SEMI JOIN wanted_keys w ON p.trace_id = w.trace_id AND p.span_id = w.span_id
    WHERE p.start_ns BETWEEN ? AND ?
"""
# Initialization spans stored before the run, in the traces of its cold starts (`cold_traces`):
# a cold start's init is its own whichever run brings which (run_spans.INIT_SCHEMA's columns).
STORED_INITS: Final = """
    SELECT i.trace_id, i.service, i.parent_span_id, i.duration_ns, i.start_ns FROM spans i
    SEMI JOIN cold_traces c ON i.trace_id = c.trace_id
    WHERE i.name = 'Initialization' AND NOT i.in_progress AND i.start_ns BETWEEN ? AND ?
"""
# The run's Initialization spans (`run_inits`) given to stored cold starts that had none: calls
# beside the init (same parent) or above it (its parent), and children still waiting.
_NEEDS_INIT = """t.trace_id = i.trace_id AND t.{service} = i.service AND t.cold_start AND t.init_ns IS NULL
    AND (t.parent_span_id = i.parent_span_id OR t.span_id = i.parent_span_id) AND t.start_ns BETWEEN ? AND ?"""
_LONGEST_INITS = """(SELECT trace_id, service, parent_span_id, max(duration_ns) AS duration_ns FROM run_inits
    GROUP BY trace_id, service, parent_span_id)"""
# A call's parent is read from its span's row: calls do not keep it (insert_calls).
INIT_FILLED: Final = f"""
    CREATE OR REPLACE TEMP TABLE init_filled AS
    WITH t AS (
        SELECT c.trace_id, c.span_id, c.start_ns, c.callee, c.cold_start, c.init_ns, s.parent_span_id
        FROM calls c JOIN spans s ON s.trace_id = c.trace_id AND s.span_id = c.span_id AND s.start_ns = c.start_ns
        WHERE c.role = 'entry' AND c.cold_start AND c.init_ns IS NULL
          AND c.start_ns BETWEEN ? AND ? AND s.start_ns BETWEEN ? AND ?
    )
    SELECT t.trace_id, t.span_id, t.start_ns, max(i.duration_ns) AS init_ns FROM t, {_LONGEST_INITS} i
    WHERE {_NEEDS_INIT.format(service="callee")} GROUP BY ALL
"""
_FILLED = "(trace_id, span_id, start_ns) IN (SELECT (trace_id, span_id, start_ns) FROM init_filled)"
_FILLED_ROLLED = f"role = 'entry' AND {_FILLED} AND start_ns < (SELECT rolled_until FROM rollup_state)"
RETRACT_BEFORE_INIT: Final = (
    rollup_sql.name_new_hops("calls", _FILLED_ROLLED),
    *rollup_sql.rollup_insert("calls", _FILLED_ROLLED, sign=-1),
)
FILL_CALLS_INIT: Final = """
    UPDATE calls t SET init_ns = f.init_ns FROM init_filled f
    WHERE t.role = 'entry' AND t.trace_id = f.trace_id AND t.span_id = f.span_id AND t.start_ns = f.start_ns
"""
ADD_BACK_WITH_INIT: Final = rollup_sql.rollup_insert("calls", _FILLED_ROLLED)
FILL_PENDING_INIT: Final = f"""
    UPDATE pending t SET init_ns = i.duration_ns FROM {_LONGEST_INITS} i
    WHERE {_NEEDS_INIT.format(service="service")}
"""
DROP_INIT_FILLED: Final = "DROP TABLE IF EXISTS init_filled"

# Stored children waiting for one of the run's spans (`run_keys`). Most runs find nothing
# waiting (every parent came with its children): then this is skipped.
COUNT_PENDING: Final = "SELECT count(*) FROM pending"
WAITING_FOR_RUN: Final = """
    SELECT w.* EXCLUDE (since_ns) FROM pending w
    SEMI JOIN run_keys p ON p.trace_id = w.want_trace_id AND p.span_id = w.want_span_id
"""
_SAME_WANT = """d.trace_id = m.trace_id AND d.span_id = m.span_id AND d.relation = m.relation
    AND d.want_trace_id = m.want_trace_id AND d.want_span_id = m.want_span_id"""
DELETE_MET: Final = f"DELETE FROM pending d USING met m WHERE {_SAME_WANT}"
INSERT_STILL_WAITING: Final = "INSERT INTO pending BY NAME SELECT w.*, ? AS since_ns FROM still_waiting w"

# Stored guesses the linker gave up (Linked.superseded) are in `calls` (and maybe the rollup),
# in `superseded` (trace_id, span_id, start_ns): their statements scan a range of it.
_SUPERSEDED = (
    "start_ns BETWEEN ? AND ? AND role = 'inferred' "
    "AND (trace_id, span_id, start_ns) IN (SELECT (trace_id, span_id, start_ns) FROM superseded)"
)
# Stored calls about to be deleted that the rollup already counted are taken back out of it.
_RETRACTED = f"{_SUPERSEDED} AND start_ns < (SELECT rolled_until FROM rollup_state)"
RETRACT_SUPERSEDED: Final = (
    rollup_sql.name_new_hops("calls", _RETRACTED),
    *rollup_sql.rollup_insert("calls", _RETRACTED, sign=-1),
    rollup_sql.note_dirty("calls", _RETRACTED),
)
DELETE_STORED_SUPERSEDED: Final = (
    f"DELETE FROM calls WHERE {_SUPERSEDED}",
    f"DELETE FROM throttled_calls WHERE {_SUPERSEDED}",
)


# New calls (a table or registered Arrow named `source`) join `calls`; those older than the
# rollup's watermark are added to it too.
def insert_calls(source: str) -> str:
    """The parent span id is not kept (it stays NULL, which costs nothing; 5 bytes a span on the
    demo's spans, bench/query.py): only filling a cold start's init asks for it, and reads it
    from the span's own row. Rows keep the linker's order (by role, then as the spans came):
    sorted by trace id the trace id column took 7 bytes a span less, but analytics' scans,
    filtered by role and grouped by time, then read scattered rows (bench/query.py at 10M
    spans: 84 -> 130 ms; by role, second and trace id still 105 ms)."""
    return f"INSERT INTO calls SELECT * REPLACE (NULL::UBIGINT AS parent_span_id) FROM {source}"


def insert_throttled(source: str) -> str:
    return f"""INSERT INTO throttled_calls SELECT trace_id, span_id, start_ns, role, callee, callee_type
       FROM {source} WHERE throttle AND role IN ('entry', 'inferred')"""


_LATE = "start_ns < (SELECT rolled_until FROM rollup_state)"


def count_late(source: str) -> str:
    return f"SELECT count(*) FROM {source} WHERE {_LATE}"


def roll_up_late(source: str) -> tuple[str, ...]:
    return (
        rollup_sql.name_new_hops(source, _LATE),
        *rollup_sql.rollup_insert(source, _LATE),
        rollup_sql.note_dirty(source, _LATE),
    )


# --- housekeeping: children whose partner never came (the linker says what they become).
EXPIRED_PENDING: Final = "SELECT * EXCLUDE (since_ns) FROM pending WHERE since_ns < ?"
DELETE_EXPIRED: Final = "DELETE FROM pending WHERE since_ns < ?"

DELETE_CALLS_OLDER_THAN: Final = (
    "DELETE FROM calls WHERE start_ns < ?",
    "DELETE FROM throttled_calls WHERE start_ns < ?",
    "DELETE FROM pending WHERE start_ns < ?",
)
