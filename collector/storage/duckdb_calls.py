"""Statement sequences that maintain ``calls``, ``pending`` and the rollup (``calls_sql`` and
``rollup_sql`` say why); duckdb_map runs them, each in a transaction of its own.
"""

from __future__ import annotations

import duckdb

from collector.storage import calls_sql as sql
from collector.storage import rollup_sql


def link_calls(con: duckdb.DuckDBPyConnection, fresh: str, fresh_links: str, now_ns: int, links: int = 1) -> None:
    """Resolve the hops of the spans in table `fresh` (`links` links in `fresh_links`)."""
    # Temporaries live in the write's transaction: a rollback takes them away too.
    con.execute(sql.CREATE_NEW_CALLS)
    fresh_spans = sql.CREATE_FRESH_SPANS if links else sql.CREATE_FRESH_SPANS_WITHOUT_LINKS
    con.execute(fresh_spans.format(fresh=fresh, fresh_links=fresh_links))
    con.execute(sql.CREATE_WANTS.format(fresh_links=fresh_links))
    (pending,) = con.execute(sql.COUNT_PENDING).fetchall()[0]
    con.execute(sql.CREATE_PAIRS if pending else sql.CREATE_PAIRS_WITHOUT_PENDING)
    low, high, unpaired = con.execute(sql.WANTS_BOUNDS).fetchall()[0]
    if unpaired:
        con.execute(sql.ADD_STORED_PAIRS, [low - sql.LOOKBACK_NS, high + sql.SKEW_NS])
    if pending:
        con.execute(sql.DELETE_RESOLVED_PENDING)
    if unpaired:  # stored partners only take wants away: with none unpaired, none waits
        con.execute(sql.INSERT_PENDING, [now_ns])
    (inits,) = con.execute(sql.COUNT_INITS).fetchall()[0]
    con.execute(sql.INSERT_CALLS if inits else sql.INSERT_CALLS_WITHOUT_INITS)
    con.execute(sql.CREATE_SUPERSEDED)
    superseding, stored, stored_low, stored_high = con.execute(sql.COUNT_SUPERSEDED).fetchall()[0]
    if superseding:
        con.execute(sql.DELETE_NEW_SUPERSEDED)
    if stored:
        bounds = [stored_low, stored_high]
        (rolled_until,) = con.execute(rollup_sql.ROLLED_UNTIL).fetchall()[0]
        if stored_low < rolled_until:
            for statement in sql.RETRACT_SUPERSEDED:
                con.execute(statement, bounds)
        for statement in sql.DELETE_STORED_SUPERSEDED:
            con.execute(statement, bounds)
    flush_new_calls(con)
    for statement in sql.DROP_TEMPORARIES:
        con.execute(statement)


def flush_new_calls(con: duckdb.DuckDBPyConnection) -> None:
    """Move the staged calls into `calls`; those behind the rollup's watermark go into it too."""
    for statement in sql.INSERT_NEW_CALLS:
        con.execute(statement)
    if con.execute(sql.COUNT_LATE_CALLS).fetchall()[0][0]:
        for statement in sql.ROLL_UP_LATE_CALLS:
            con.execute(statement)
    con.execute(sql.DROP_NEW_CALLS)


def expire_pending(con: duckdb.DuckDBPyConnection, waited_since_ns: int) -> None:
    """Children waiting since before `waited_since_ns` become entries from an unknown caller."""
    con.execute(sql.CREATE_NEW_CALLS)
    for statement in sql.EXPIRE_PENDING:
        con.execute(statement, [waited_since_ns])
    flush_new_calls(con)


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
