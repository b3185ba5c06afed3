"""Maintains the ``calls`` table inside each write transaction (see ``calls_sql`` for why).

Runs on the writer's connection, after the write's spans are inserted and before COMMIT, so
a span and the hops it resolves become visible together.
"""

from __future__ import annotations

import duckdb

from collector.storage import calls_sql as sql


def link_calls(con: duckdb.DuckDBPyConnection, fresh: str, fresh_links: str, now_ns: int) -> None:
    """Resolve the hops of the spans in table `fresh` (links in `fresh_links`)."""
    # Temporaries live in the write's transaction: a rollback takes them away too.
    con.execute(sql.CREATE_FRESH_VIEW.format(fresh=fresh, fresh_links=fresh_links))
    con.execute(sql.CREATE_WANTS.format(fresh_links=fresh_links))
    low, high, wanted = con.execute(sql.WANTS_BOUNDS).fetchall()[0]
    if not wanted:
        low, high = 0, -1
    con.execute(sql.CREATE_PAIRS, [low - sql.LOOKBACK_NS, high + sql.SKEW_NS])
    con.execute(sql.DELETE_RESOLVED_PENDING)
    con.execute(sql.INSERT_PENDING, [now_ns])
    con.execute(sql.INSERT_INIT_CALLS)
    con.execute(sql.INSERT_INFERRED_CALLS)
    con.execute(sql.INSERT_ROOT_CALLS)
    con.execute(sql.INSERT_CHILD_CALLS)
    partner_low, partner_high = con.execute(sql.PAIR_PARTNER_BOUNDS).fetchall()[0]
    if partner_low is not None:
        con.execute(sql.DELETE_SUPERSEDED_INFERRED, [partner_low, partner_high])
    for statement in sql.DROP_TEMPORARIES:
        con.execute(statement)


def expire_pending(con: duckdb.DuckDBPyConnection, waited_since_ns: int) -> None:
    """Children waiting since before `waited_since_ns` become entries from an unknown caller."""
    for statement in sql.EXPIRE_PENDING:
        con.execute(statement, [waited_since_ns])
