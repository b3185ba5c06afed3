"""Linking on DuckDB: read what the linker asks for, keep what it answers (duckdb_map runs each
sequence in a transaction of its own). The rules are collector/service_map's, never here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.service_map.linker import Linked, PreparedRun, cold_starts, expired_calls, link, prepare
from collector.service_map.roles import LOOKBACK_NS, PARTNER_SCHEMA, WANT_SCHEMA
from collector.storage import calls_sql as sql
from collector.storage import rollup_sql


def link_calls(con: duckdb.DuckDBPyConnection, spans: pa.Table, links: pa.Table, now_ns: int) -> None:
    """Resolve the hops of `spans` (roles.LINKED_SPAN_COLUMNS) with their `links`."""
    prepared = prepare(spans, links, _stored_inits(con, cold_starts(spans)))
    linked = link(prepared, _stored_partners(con, prepared), _waiting_for(con, prepared))
    _keep(con, linked, now_ns)


def _stored_inits(con: duckdb.DuckDBPyConnection, cold: pa.Table) -> pa.Table | None:
    """Initialization spans stored in the traces of the run's cold starts (INIT_SCHEMA)."""
    if not cold.num_rows:
        return None
    bounds = pc.min_max(cold.column("start_ns")).as_py()
    with _registered(con, "cold_traces", cold):
        return con.sql(
            sql.STORED_INITS, params=[bounds["min"] - LOOKBACK_NS, bounds["max"] + LOOKBACK_NS]
        ).to_arrow_table()


def _fill_stored_inits(con: duckdb.DuckDBPyConnection, inits: pa.Table) -> None:
    """Cold starts stored before the run without their init get it from the run's (calls, the
    rollup where they are counted already, and children still waiting)."""
    if not inits.num_rows:
        return
    bounds = pc.min_max(inits.column("start_ns")).as_py()
    window = [bounds["min"] - LOOKBACK_NS, bounds["max"] + LOOKBACK_NS]
    with _registered(con, "run_inits", inits):
        con.execute(sql.INIT_FILLED, window * 3)
        (filled,) = con.execute("SELECT count(*) FROM init_filled").fetchall()[0]
        if filled:
            for statement in sql.RETRACT_BEFORE_INIT:
                con.execute(statement)
            con.execute(sql.FILL_CALLS_INIT)
            for statement in sql.ADD_BACK_WITH_INIT:
                con.execute(statement)
        con.execute(sql.DROP_INIT_FILLED)
        con.execute(sql.FILL_PENDING_INIT, window)


def _stored_partners(con: duckdb.DuckDBPyConnection, prepared: PreparedRun) -> pa.Table:
    """Stored spans that the run's unmet wants name (DuckDB's Arrow has BOOLEAN as the bool8
    extension and its own string types: cast to the linker's schemas)."""
    if not prepared.unmet.num_rows:
        return PARTNER_SCHEMA.empty_table()
    earliest_ns, latest_ns = prepared.wanted_start_range()
    with _registered(con, "wanted_keys", prepared.wanted_keys()):
        return con.sql(sql.STORED_PARTNERS, params=[earliest_ns, latest_ns]).to_arrow_table().cast(PARTNER_SCHEMA)


def _waiting_for(con: duckdb.DuckDBPyConnection, prepared: PreparedRun) -> pa.Table:
    """Stored children waiting for one of the run's spans."""
    (pending,) = con.execute(sql.COUNT_PENDING).fetchall()[0]
    if not pending:
        return WANT_SCHEMA.empty_table()
    with _registered(con, "run_keys", prepared.own_keys()):
        return con.sql(sql.WAITING_FOR_RUN).to_arrow_table().cast(WANT_SCHEMA)


def _keep(con: duckdb.DuckDBPyConnection, linked: Linked, now_ns: int) -> None:
    _fill_stored_inits(con, linked.inits)  # before this run's own rows go in: they have theirs
    if linked.met.num_rows:
        with _registered(con, "met", linked.met):
            con.execute(sql.DELETE_MET)
    if linked.still_waiting.num_rows:
        with _registered(con, "still_waiting", linked.still_waiting):
            con.execute(sql.INSERT_STILL_WAITING, [now_ns])
    _delete_superseded(con, linked.superseded)
    calls = linked.calls
    if calls.num_rows:
        with _registered(con, "run_calls", calls):
            flush_calls(con, "run_calls", throttled=bool(pc.any(calls.column("throttle")).as_py()))


def _delete_superseded(con: duckdb.DuckDBPyConnection, superseded: pa.Table) -> None:
    """Stored guesses at a target that the run's children show to be instrumented callees."""
    if not superseded.num_rows:
        return
    bounds = pc.min_max(superseded.column("start_ns")).as_py()
    window = [bounds["min"], bounds["max"]]
    with _registered(con, "superseded", superseded):
        (rolled_until,) = con.execute(rollup_sql.ROLLED_UNTIL).fetchall()[0]
        if window[0] < rolled_until:
            for statement in sql.RETRACT_SUPERSEDED:
                con.execute(statement, window)
        for statement in sql.DELETE_STORED_SUPERSEDED:
            con.execute(statement, window)


def flush_calls(con: duckdb.DuckDBPyConnection, source: str, *, throttled: bool = True) -> None:
    """Move the calls in `source` into `calls`; those behind the rollup's watermark go into it too."""
    con.execute(sql.insert_calls(source))
    if throttled:
        con.execute(sql.insert_throttled(source))
    if con.execute(sql.count_late(source)).fetchall()[0][0]:
        for statement in sql.roll_up_late(source):
            con.execute(statement)


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """`table` readable as `name` on `con` for the length of a with block."""
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def expire_pending(con: duckdb.DuckDBPyConnection, waited_since_ns: int) -> None:
    """Children waiting since before `waited_since_ns` stop waiting; the linker says what they become."""
    waited = con.sql(sql.EXPIRED_PENDING, params=[waited_since_ns]).to_arrow_table().cast(WANT_SCHEMA)
    calls = expired_calls(waited)
    if calls.num_rows:
        with _registered(con, "expired_calls", calls):
            flush_calls(con, "expired_calls")
    con.execute(sql.DELETE_EXPIRED, [waited_since_ns])


def roll_up(con: duckdb.DuckDBPyConnection, settled_before_ns: int) -> int:
    """Roll whole minutes that started before `settled_before_ns` into call_minutes; the new watermark."""
    (rolled_until,) = con.execute(rollup_sql.ROLLED_UNTIL).fetchall()[0]
    until = settled_before_ns // rollup_sql.MINUTE_NS * rollup_sql.MINUTE_NS
    if until <= rolled_until:
        return int(rolled_until)
    for statement in rollup_sql.ROLL_UP:
        con.execute(statement, [rolled_until, until])
    con.execute(rollup_sql.MOVE_WATERMARK, [until])
    return until
