"""Statement sequences that maintain ``calls``, ``pending`` and the rollup (``calls_sql`` and
``rollup_sql`` say why); duckdb_map runs them, each in a transaction of its own. A link run
pairs its own spans in memory (run_links.py, call_rows.py) and asks DuckDB only for the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.storage import calls_sql as sql
from collector.storage import rollup_sql
from collector.storage.call_rows import run_calls, superseding
from collector.storage.run_links import RunSpans


def link_calls(con: duckdb.DuckDBPyConnection, spans: pa.Table, links: pa.Table, now_ns: int) -> None:
    """Resolve the hops of `spans` (calls_sql.LINKED_SPAN_COLUMNS) with their `links`."""
    run = RunSpans.of(spans, links)
    pairs, unpaired = run.pair(run.wants(links))
    found = [*_pending_pairs(con, run, pairs.schema), *_stored_pairs(con, unpaired, now_ns, pairs.schema)]
    if found:
        pairs = pa.concat_tables([pairs, *found]).combine_chunks()
    _delete_stored_superseded(con, pairs)
    calls = run_calls(run, pairs)
    if calls.num_rows:
        with _registered(con, "run_calls", calls):
            flush_calls(con, "run_calls", throttled=bool(pc.any(calls.column("throttle")).as_py()))


def _pending_pairs(con: duckdb.DuckDBPyConnection, run: RunSpans, schema: pa.Schema) -> list[pa.Table]:
    """Children stored earlier whose partner is in this run (as `schema`); they stop waiting."""
    (pending,) = con.execute(sql.COUNT_PENDING).fetchall()[0]
    if not pending:
        return []
    with _registered(con, "run_partners", run.partners()):
        found = con.sql(sql.PENDING_PAIRS).to_arrow_table().cast(schema)
        if found.num_rows:
            con.execute(sql.DELETE_PAIRED_PENDING)
    return [found]


def _stored_pairs(con: duckdb.DuckDBPyConnection, unpaired: pa.Table, now_ns: int, schema: pa.Schema) -> list[pa.Table]:
    """This run's children whose partner was stored by an earlier run (as `schema`); the rest
    wait in `pending`. (DuckDB's Arrow has BOOLEAN as the bool8 extension: cast to the run's.)"""
    if not unpaired.num_rows:
        return []
    bounds = pc.min_max(unpaired.column("start_ns")).as_py()
    window = [bounds["min"] - sql.LOOKBACK_NS, bounds["max"] + sql.SKEW_NS]
    with _registered(con, "unpaired_wants", unpaired):
        found = con.sql(sql.STORED_PAIRS, params=window).to_arrow_table().cast(schema)
        if not found.num_rows:
            con.execute(sql.INSERT_PENDING, [now_ns])
            return []
        with _registered(con, "stored_pairs", found):
            con.execute(sql.INSERT_PENDING_BUT_STORED_PAIRS, [now_ns])
    return [found]


def _delete_stored_superseded(con: duckdb.DuckDBPyConnection, pairs: pa.Table) -> None:
    """Stored guesses at a target that this run's children show to be instrumented callees."""
    stored = pairs.filter(pc.and_(pairs.column("p_stored"), superseding(pairs)))
    if not stored.num_rows:
        return
    superseded = pa.table(
        {
            "trace_id": stored.column("want_trace_id"),
            "span_id": stored.column("want_span_id"),
            "start_ns": stored.column("p_start_ns"),
        }
    )
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
    """Children waiting since before `waited_since_ns` become entries from an unknown caller."""
    con.execute(sql.CREATE_NEW_CALLS)
    for statement in sql.EXPIRE_PENDING:
        con.execute(statement, [waited_since_ns])
    flush_calls(con, "new_calls")
    con.execute(sql.DROP_NEW_CALLS)


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
