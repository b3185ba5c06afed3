"""The service map's tables kept up to date beside ingest, on a connection of their own.

Linking (``calls``), orphan expiry, the per-minute rollup and their retention run in their own
transactions on a second cursor, under their own lock, so they never hold up the writer's
commits: DuckDB runs the two transactions side by side (they write different tables) and on
the two cores at once. The writer hands over each write's spans (the columns linking reads,
zero-copy) after its commit; linking them every 2 s costs a fraction of linking per
write, whose fixed cost per statement would dominate small writes. A crash loses the map's
view of the last 2 s of spans, never the spans themselves.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import duckdb
import pyarrow as pa

from collector.storage import calls_sql, rollup_sql
from collector.storage.duckdb_calls import expire_pending, link_calls, roll_up
from collector.storage.protocols import StoreUnavailable

_logger = logging.getLogger(__name__)
T = TypeVar("T")
MAX_UNLINKED_ROWS = 2_000_000  # spans kept for linking while it fails (~100 MiB of columns)
DERIVED_RETENTION = (*calls_sql.DELETE_CALLS_OLDER_THAN, *rollup_sql.DELETE_OLDER_THAN)


class DuckDBMapTables:
    """calls, pending and the rollup, maintained on `con` (a cursor of the store's database)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._unlinked: list[tuple[pa.Table, pa.Table]] = []
        self._unlinked_rows = 0

    def queue(self, spans: pa.Table, links: pa.Table) -> None:
        """A committed write's spans (LINKED_SPAN_COLUMNS) and links, for the next link_new_spans."""
        with self._queue_lock:
            self._unlinked.append((spans, links))
            self._unlinked_rows += spans.num_rows

    def _take_queue(self) -> list[tuple[pa.Table, pa.Table]]:
        with self._queue_lock:
            taken, self._unlinked, self._unlinked_rows = self._unlinked, [], 0
        return taken

    def _put_back(self, taken: list[tuple[pa.Table, pa.Table]]) -> None:
        """After a failed link: back in front of newer writes, the oldest dropped past the bound."""
        with self._queue_lock:
            self._unlinked = taken + self._unlinked
            self._unlinked_rows = sum(s.num_rows for s, _ in self._unlinked)
            while self._unlinked_rows > MAX_UNLINKED_ROWS and len(self._unlinked) > 1:
                dropped, _ = self._unlinked.pop(0)
                self._unlinked_rows -= dropped.num_rows
                _logger.warning("linking keeps failing: %d spans left off the service map", dropped.num_rows)

    def _in_transaction(self, doing: str, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._lock:
            try:
                self._con.execute("BEGIN")
                result = work(self._con)
                self._con.execute("COMMIT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):  # no transaction was open
                    self._con.execute("ROLLBACK")
                raise StoreUnavailable(f"{doing} failed: {exc}") from exc
        return result

    def link_new_spans(self, now_ns: int | None = None) -> int:
        """Resolve the calls of every span queued since the last run; how many spans."""
        taken = self._take_queue()
        if not taken:
            return 0
        spans = pa.concat_tables([s for s, _ in taken])
        links = pa.concat_tables([link for _, link in taken])
        at_ns = time.time_ns() if now_ns is None else now_ns

        try:
            self._in_transaction("linking spans", lambda con: link_calls(con, spans, links, at_ns))
        except StoreUnavailable:
            self._put_back(taken)
            raise
        return int(spans.num_rows)

    def expire_pending(self, waited_since_ns: int) -> None:
        self._in_transaction("expiring pending calls", lambda con: expire_pending(con, waited_since_ns))

    def roll_up(self, settled_before_ns: int) -> None:
        self._in_transaction("rolling up calls", lambda con: roll_up(con, settled_before_ns))

    def delete_older_than(self, cutoff_ns: int) -> None:
        def delete(con: duckdb.DuckDBPyConnection) -> None:
            for statement in DERIVED_RETENTION:
                con.execute(statement, [cutoff_ns])

        self._in_transaction("map retention", delete)

    def close(self) -> None:
        with self._lock:
            self._con.close()
