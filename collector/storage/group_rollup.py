"""Each group's own per-minute rollup, so a group's map over hours reads minutes, not millions.

A group is a filter expression over whole traces; its map is the map of the calls of the traces
it matches. Read raw, that is every call of the window to aggregate (a group matching most
traces cost ~430 ms over 1M spans, seconds over 10M: bench/query.py). So the writer keeps, per
saved group, the same sums as the main rollup (rollup_sql): after each main rollup pass it
rolls each group's next whole minutes up to the main watermark, BACKFILL_MINUTES at a time, from
the oldest stored call (a new group applies to every stored trace, as its raw map does).

A minute's calls belong to the traces the group matches whose root started within
ROOT_SLACK_NS before the minute's end (the raw map takes the roots in its window: the two can
differ only by a trace rooted before a window that reaches into it). A group whose filter
changes is rolled again from the start; a deleted one's rows go. Minutes the main rollup
changes after the fact (late calls, withdrawn guesses: rollup_sql.note_dirty) are rolled
again for every group, MAX_DIRTY_MINUTES a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import duckdb

from collector.storage import rollup_sql
from collector.storage.filter_sql import compile_trace_predicate
from collector.storage.protocols import Group, TimeWindow
from collector.storage.search_sql import ROOTS_CTE, span_window
from spanlang.filter_ast import FilterError
from spanlang.filter_parser import parse_filter

MINUTE_NS: Final = rollup_sql.MINUTE_NS
BACKFILL_MINUTES: Final = 60
MAX_DIRTY_MINUTES: Final = 60
ROOT_SLACK_NS: Final = 15 * MINUTE_NS

STATES: Final = "SELECT group_id, name, filter, rolled_from, rolled_until FROM group_rollup"
ADD_STATE: Final = "INSERT INTO group_rollup VALUES (?, ?, ?, ?, ?)"
MOVE_STATE: Final = "UPDATE group_rollup SET rolled_until = ? WHERE group_id = ?"
DROP_STATE: Final = "DELETE FROM group_rollup WHERE group_id = ?"
GROUP_TABLES: Final = ("group_minutes", "group_latency_minutes", "group_throttle_minutes")
DROP_ROWS: Final = tuple(f"DELETE FROM {table} WHERE group_id = ?" for table in GROUP_TABLES)
DROP_MINUTE: Final = tuple(f"DELETE FROM {table} WHERE group_id = ? AND minute = ?" for table in GROUP_TABLES)
# Each throttled trace of the group in [lo, hi), by the throttled hop that began last (as
# map_sql.THROTTLE_SOURCES finds it), in the minute that hop began.
THROTTLE_INSERT: Final = f"""INSERT INTO group_throttle_minutes {{ctes}}
    SELECT {{group_id}}, last_ns // {MINUTE_NS} * {MINUTE_NS}, source.name, source.type, count(*) FROM (
        SELECT arg_max({{'name': callee, 'type': callee_type}}, start_ns) AS source, max(start_ns) AS last_ns
        FROM throttled_calls WHERE start_ns >= ? AND start_ns < ? AND trace_id IN (SELECT trace_id FROM matched)
        GROUP BY trace_id
    ) GROUP BY ALL"""
DIRTY: Final = f"SELECT DISTINCT minute FROM rollup_dirty ORDER BY minute LIMIT {MAX_DIRTY_MINUTES}"
CLEAN: Final = "DELETE FROM rollup_dirty WHERE minute = ?"
CLEAN_ALL: Final = "DELETE FROM rollup_dirty"
OLDEST_CALL: Final = "SELECT min(start_ns) FROM calls"
WATERMARK: Final = "SELECT rolled_until FROM rollup_state"
# Where a group's map reads its rollup: the group's state, if it is for the group's filter as saved now.
COVERAGE: Final = """SELECT r.group_id, r.rolled_from, r.rolled_until FROM group_rollup r
    JOIN trace_groups g ON g.name = r.name AND g.filter = r.filter WHERE r.name = ?"""


@dataclass(frozen=True, slots=True)
class GroupState:
    group_id: int
    name: str
    filter: str
    rolled_from: int
    rolled_until: int


def states(con: duckdb.DuckDBPyConnection) -> list[GroupState]:
    return [GroupState(int(i), str(n), str(f), int(a), int(b)) for i, n, f, a, b in con.execute(STATES).fetchall()]


def roll_minutes(con: duckdb.DuckDBPyConnection, state: GroupState, low_ns: int, high_ns: int) -> None:
    """Add the group's sums for the calls in [low, high) (whole minutes)."""
    try:
        expr = parse_filter(state.filter)
    except FilterError:
        return  # saved before a change of the language: the raw map says what is wrong
    roots = TimeWindow(low_ns - ROOT_SLACK_NS, high_ns)
    predicate = compile_trace_predicate(expr, span_window(roots))
    ctes = f"WITH {ROOTS_CTE}, matched AS (SELECT r.trace_id FROM roots r WHERE {predicate.text})"
    source = "(SELECT * FROM calls WHERE trace_id IN (SELECT trace_id FROM matched))"
    params: list[Any] = [roots.start_ns, roots.end_ns, *predicate.params, low_ns, high_ns]
    for statement in rollup_sql.rollup_insert(
        source, "start_ns >= ? AND start_ns < ?", group_id=state.group_id, ctes=ctes
    ):
        con.execute(statement, params)
    throttles = THROTTLE_INSERT.replace("{ctes}", ctes).replace("{group_id}", str(int(state.group_id)))
    con.execute(throttles, params)


def adopt(con: duckdb.DuckDBPyConnection, groups: Sequence[Group], known: list[GroupState]) -> list[GroupState]:
    """States for the saved groups: new ones (and changed filters) start at the oldest call;
    those of deleted groups and old filters go with their rows."""
    saved = {g.name: g.filter for g in groups}
    kept = []
    for state in known:
        if saved.get(state.name) == state.filter:
            kept.append(state)
            continue
        for statement in (*DROP_ROWS, DROP_STATE):
            con.execute(statement, [state.group_id])
    have = {s.name for s in kept}
    new = [g for g in groups if g.name not in have]
    if not new:
        return kept
    (oldest,) = con.execute(OLDEST_CALL).fetchall()[0]
    if oldest is None:
        return kept  # nothing stored yet: the group starts with the first calls
    start = int(oldest) // MINUTE_NS * MINUTE_NS
    next_id = 1 + max((s.group_id for s in known), default=0)
    for group in new:
        state = GroupState(next_id, group.name, group.filter, start, start)
        con.execute(ADD_STATE, [state.group_id, state.name, state.filter, state.rolled_from, state.rolled_until])
        kept.append(state)
        next_id += 1
    return kept


def roll_up_groups(con: duckdb.DuckDBPyConnection, groups: Sequence[Group]) -> None:
    """One pass: dirty minutes again, then each group's next minutes up to the main watermark."""
    (watermark,) = con.execute(WATERMARK).fetchall()[0]
    current = adopt(con, groups, states(con))
    if not current:
        con.execute(CLEAN_ALL)  # no group to roll again
        return
    for (minute,) in con.execute(DIRTY).fetchall():
        for state in current:
            if state.rolled_from <= minute < state.rolled_until:
                for statement in DROP_MINUTE:
                    con.execute(statement, [state.group_id, minute])
                roll_minutes(con, state, int(minute), int(minute) + MINUTE_NS)
        con.execute(CLEAN, [minute])
    for state in current:
        until = min(int(watermark), state.rolled_until + BACKFILL_MINUTES * MINUTE_NS)
        if until > state.rolled_until:
            roll_minutes(con, state, state.rolled_until, until)
            con.execute(MOVE_STATE, [until, state.group_id])


def coverage(con: duckdb.DuckDBPyConnection, name: str) -> tuple[int, int, int] | None:
    """(group id, rolled from, rolled until) of a group's rollup, if it has one for its filter."""
    rows = con.execute(COVERAGE, [name]).fetchall()
    return (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None
