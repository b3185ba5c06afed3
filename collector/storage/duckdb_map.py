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
from collections.abc import Callable, Sequence
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.model import STORED_SPAN_SCHEMA
from collector.service_map.roles import LINKED_SPAN_COLUMNS
from collector.storage import calls_sql, rollup_sql
from collector.storage.duckdb_calls import expire_pending, link_calls, roll_up
from collector.storage.group_rollup import roll_up_groups
from collector.storage.protocols import Group, StoreUnavailable

_logger = logging.getLogger(__name__)
T = TypeVar("T")
# The stored span's columns linking reads, as the writer hands them over (and a lake reads them back).
LINKED_SPAN_SCHEMA = pa.schema([STORED_SPAN_SCHEMA.field(name) for name in LINKED_SPAN_COLUMNS])
MAX_UNLINKED_ROWS = 2_000_000  # spans kept for linking while it fails (~100 MiB of columns)
LINK_RUN_ROWS = 65_536  # spans a link transaction takes (a part of a run; bench/link_backlog.py)
DERIVED_RETENTION = (*calls_sql.DELETE_CALLS_OLDER_THAN, *rollup_sql.DELETE_OLDER_THAN)


def detached(spans: pa.Table) -> pa.Table:
    """`spans` copied into buffers of their own. The C decoder hands pyarrow a batch as one
    array of its columns, which all share that array's release: a view of a few columns kept
    the whole decoded batch (~500 bytes a span, ~700 resident, against ~130 for the columns
    linking reads) until the linker ran, so a flood's unlinked backlog held its batches whole."""
    columns = [pa.concat_arrays(column.chunks) if column.num_chunks else column for column in spans.columns]
    return pa.Table.from_arrays(columns, schema=spans.schema)


class UnlinkableSpans(StoreUnavailable):
    """The linker (collector/service_map) failed on the values of the spans it was given."""


# What the linker's Arrow and numpy work raises on values it cannot handle.
LINKER_DATA_ERRORS = (pa.ArrowException, ValueError, ArithmeticError, IndexError)


def caused_by_data(exc: BaseException) -> bool:
    """Whether a failure comes from the values linked (an overflow, a bad conversion), not from
    the store: DuckDB reports the first error as the cause or context of the abort it leads to."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, (duckdb.DataError, UnlinkableSpans)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class DuckDBMapTables:
    """calls, pending and the rollup, maintained on `con` (a cursor of the store's database)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_rows: int | None = LINK_RUN_ROWS) -> None:
        self._con = con
        self.run_rows = run_rows  # None: a run in one transaction
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._unlinked: list[tuple[pa.Table, pa.Table]] = []
        self._unlinked_rows = 0
        self.quarantined_spans = 0

    def queue(self, spans: pa.Table, links: pa.Table, snapshot: int | None = None) -> None:
        """A committed write's spans (LINKED_SPAN_COLUMNS) and links, for the next link_new_spans
        (`snapshot`: the lake snapshot the commit made; a file has none)."""
        spans, links = detached(spans), detached(links)
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
                self._roll_back()
                raise StoreUnavailable(f"{doing} failed: {exc}") from exc
            except BaseException:  # never leave the transaction open behind a failure
                self._roll_back()
                raise
        return result

    def _roll_back(self) -> None:
        with contextlib.suppress(duckdb.Error):  # no transaction was open
            self._con.execute("ROLLBACK")

    def link_new_spans(self, now_ns: int | None = None) -> int:
        """Resolve the calls of every span queued since the last run; how many spans."""
        taken = self._take_queue()
        if not taken:
            return 0
        return self._link_taken(taken, time.time_ns() if now_ns is None else now_ns)

    def _link_taken(self, taken: list[tuple[pa.Table, pa.Table]], at_ns: int) -> int:
        """Link the taken writes in parts of at most `run_rows` spans, each in a transaction of
        its own: a run over a flood's backlog (400k spans after a 2 s flood) held ~1 KiB a span
        at once in Arrow and DuckDB. Every part gets all the run's links: a link counts only
        in the part that holds its span. A store failure puts the parts not linked back."""
        spans = pa.concat_tables([s for s, _ in taken])
        links = pa.concat_tables([link for _, link in taken])
        size = self.run_rows or max(1, spans.num_rows)
        parts = [(spans.slice(at, size), links) for at in range(0, spans.num_rows, size)]
        for done, (part, part_links) in enumerate(parts):
            try:
                self._link(part, part_links, at_ns)
            except StoreUnavailable as exc:
                if not caused_by_data(exc):
                    self._put_back([(pa.concat_tables([p for p, _ in parts[done:]]), links)])
                    raise
                self._quarantine_failing(part, part_links, at_ns)
        return int(spans.num_rows)

    def _link(self, spans: pa.Table, links: pa.Table, at_ns: int) -> None:
        try:
            self._in_transaction("linking spans", lambda con: self._link_work(con, spans, links, at_ns))
        except LINKER_DATA_ERRORS as exc:  # the linker's own failure on these values: quarantined as data
            raise UnlinkableSpans(f"linking spans failed: {type(exc).__name__}: {exc}") from exc

    def _link_work(self, con: duckdb.DuckDBPyConnection, spans: pa.Table, links: pa.Table, at_ns: int) -> None:
        """One transaction's linking (a lake's leader records its progress beside it)."""
        link_calls(con, spans, links, at_ns)

    def _quarantine_failing(self, spans: pa.Table, links: pa.Table, at_ns: int) -> None:
        """Link the run in halves, and halves of the halves that fail, down to the spans whose
        own values break linking: those are left off the map (counted), everyone else's link.
        A few bad spans cost ~2 log2(n) runs, once; one request can no longer stop the map."""
        if spans.num_rows <= 1:
            self.quarantined_spans += spans.num_rows
            _logger.warning(
                "a span that breaks linking was left off the service map (%d so far)", self.quarantined_spans
            )
            return
        middle = spans.num_rows // 2
        for part in (spans.slice(0, middle), spans.slice(middle)):
            part_links = links.filter(
                pc.is_in(links.column("span_id"), value_set=part.column("span_id").combine_chunks())
            )
            try:
                self._link(part, part_links, at_ns)
            except StoreUnavailable as exc:
                if not caused_by_data(exc):
                    raise
                self._quarantine_failing(part, part_links, at_ns)

    def expire_pending(self, waited_since_ns: int) -> None:
        self._in_transaction("expiring pending calls", lambda con: expire_pending(con, waited_since_ns))

    def roll_up(self, settled_before_ns: int, groups: Sequence[Group] = ()) -> None:
        """The main rollup's next minutes, then each group's (group_rollup.py), apart: a group's
        failure leaves the main rollup done."""
        self._in_transaction("rolling up calls", lambda con: roll_up(con, settled_before_ns))
        self._in_transaction("rolling up groups", lambda con: roll_up_groups(con, groups))

    def delete_older_than(self, cutoff_ns: int) -> None:
        def delete(con: duckdb.DuckDBPyConnection) -> None:
            for statement in DERIVED_RETENTION:
                con.execute(statement, [cutoff_ns])

        self._in_transaction("map retention", delete)

    def close(self) -> None:
        with self._lock:
            self._con.close()
