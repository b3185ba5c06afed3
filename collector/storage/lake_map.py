"""The service map's tables in a lake: kept by the leader from every collector's spans.

A trace's spans may reach different collectors, so no collector can link the spans it wrote
alone: a child's parent may be committed by another a moment later. The leader (leader_lock.py)
links instead, snapshot by snapshot: each run reads the spans and links every collector
committed after the snapshot recorded in ``link_state`` up to the current one, links them with
the same linker and tables as one embedded collector, and records the new snapshot in the same
transaction. DuckLake numbers snapshots in commit order, so every committed span is linked
exactly once, whoever wrote it and whoever leads: when a leader dies, the next one starts from
the last snapshot the dead one committed. Orphan expiry, the rollup and retention of the
derived tables run on the leader only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from collector.model import LINK_SCHEMA
from collector.service_map.roles import LINKED_SPAN_COLUMNS
from collector.storage import lake_sql
from collector.storage.duckdb_calls import link_calls
from collector.storage.duckdb_map import LINKED_SPAN_SCHEMA, MAX_UNLINKED_ROWS, DuckDBMapTables, detached
from collector.storage.leader_lock import LeaderLock
from collector.storage.protocols import Group

LINK_COLUMNS = ", ".join(LINK_SCHEMA.names)
# Snapshots and replaced files are kept this long: a query that started before a merge or an
# expiry still finds the files it scans.
UPKEEP_KEEP_S = 3600
# A run takes at most this many snapshots (a collector's fold is one, of up to a row group:
# 16 x 122,880 ~ the 2M spans an embedded store keeps unlinked), so a leader that takes over a
# backlog links it over several runs rather than reading it all into memory at once.
MAX_SNAPSHOTS_PER_RUN = 16


class LakeMapTables(DuckDBMapTables):
    """DuckDBMapTables whose spans come from the lake's snapshots, worked by the leader only
    (a reader has no leader lock and never works them)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, leader: LeaderLock | None) -> None:
        # One transaction a run: it records the snapshots it linked, so a failure must leave
        # them all to the next run (MAX_SNAPSHOTS_PER_RUN bounds a run instead).
        super().__init__(con, run_rows=None)
        self._leader = leader
        self._snapshots = (-1, -1)  # the run's (linked before, linking up to)
        self._own: dict[int, tuple[pa.Table, pa.Table]] = {}  # this store's commits, by snapshot
        self._own_rows = 0
        self._spans_table_id: int | None = None

    def queue(self, spans: pa.Table, links: pa.Table, snapshot: int | None = None) -> None:
        """The leader keeps its own commits' spans by snapshot: a run whose every spans snapshot
        is its own links them from memory instead of reading them back from the change feed
        (~130 ms a 20k-span fold). Anyone else's, or its own dropped past the bound, are read."""
        if snapshot is None or not self.leads:
            return
        spans, links = detached(spans), detached(links)
        with self._queue_lock:
            self._own[snapshot] = (spans, links)
            self._own_rows += spans.num_rows
            while self._own_rows > MAX_UNLINKED_ROWS and self._own:
                dropped, _ = self._own.pop(min(self._own))
                self._own_rows -= dropped.num_rows

    def _take_own(self, inserted: list[int], since: int) -> list[tuple[pa.Table, pa.Table]] | None:
        """The run's spans from memory when every snapshot that inserted them is this store's own
        (forgetting those already linked), else None."""
        with self._queue_lock:
            for snapshot in [s for s in self._own if s <= since]:
                self._own_rows -= self._own.pop(snapshot)[0].num_rows
            if not all(snapshot in self._own for snapshot in inserted):
                return None
            return [self._own[snapshot] for snapshot in inserted]

    def _put_back(self, taken: list[tuple[pa.Table, pa.Table]]) -> None:
        """Nothing to put back: link_state did not move, so the next run reads the same snapshots."""

    def leading(self) -> bool:
        """Whether this collector leads now (asking for the lock if it is free)."""
        return self._leader is not None and self._leader.held()

    def link_new_spans(self, now_ns: int | None = None) -> int:
        if not self.leading():
            with self._queue_lock:  # whoever leads now reads them from the feed
                self._own, self._own_rows = {}, 0
            return 0
        with self._lock:
            (current,) = self._con.execute(lake_sql.CURRENT_SNAPSHOT).fetchall()[0]
            (since,) = self._con.execute(lake_sql.LINKED_SNAPSHOT).fetchall()[0]
        upto = min(current, since + MAX_SNAPSHOTS_PER_RUN)
        if upto <= since:
            return 0
        self._snapshots = (since, upto)
        taken = self._spans_between(since, upto)
        linked = 0
        if any(spans.num_rows for spans, _ in taken):
            linked = self._link_taken(taken, time.time_ns() if now_ns is None else now_ns)
        # Linked in one transaction with its record, or in parts (spans that break linking
        # quarantined): either way these snapshots are done.
        self._in_transaction("recording the linked snapshot", self._record)
        return linked

    def _spans_between(self, since: int, upto: int) -> list[tuple[pa.Table, pa.Table]]:
        """The spans and links committed in (since, upto]: from memory when all are this
        store's own, else from the change feed."""
        with self._lock:
            if self._spans_table_id is None:
                (self._spans_table_id,) = self._con.execute(lake_sql.SPANS_TABLE_ID).fetchall()[0]
            rows = self._con.execute(lake_sql.SPANS_INSERTED_IN, [since, upto, str(self._spans_table_id)]).fetchall()
        own = self._take_own([snapshot for (snapshot,) in rows], since)
        return own if own is not None else [self._committed_between(since, upto)]

    def _committed_between(self, since: int, upto: int) -> tuple[pa.Table, pa.Table]:
        with self._lock:
            spans = (
                self._con.sql(lake_sql.inserted_since("spans", ", ".join(LINKED_SPAN_COLUMNS)), params=[since, upto])
                .to_arrow_table()
                .cast(LINKED_SPAN_SCHEMA)
            )
            links = (
                self._con.sql(lake_sql.inserted_since("span_links", LINK_COLUMNS), params=[since, upto])
                .to_arrow_table()
                .cast(LINK_SCHEMA)
            )
        return spans, links

    def _link_work(self, con: duckdb.DuckDBPyConnection, spans: pa.Table, links: pa.Table, at_ns: int) -> None:
        self._record(con)
        link_calls(con, spans, links, at_ns)

    def _record(self, con: duckdb.DuckDBPyConnection) -> None:
        """Move link_state to this run's last snapshot (once), or fail if another leader moved it."""
        since, upto = self._snapshots
        (current,) = con.execute(lake_sql.LINKED_SNAPSHOT).fetchall()[0]
        if current == upto:
            return
        if current != since:
            raise duckdb.TransactionException(f"link_state moved from {since} to {current} under this leader")
        con.execute(lake_sql.SET_LINKED_SNAPSHOT, [upto])

    def expire_pending(self, waited_since_ns: int) -> None:
        if self.leading():
            super().expire_pending(waited_since_ns)

    def roll_up(self, settled_before_ns: int, groups: Sequence[Group] = ()) -> None:
        if self.leading():
            super().roll_up(settled_before_ns, groups)

    def delete_older_than(self, cutoff_ns: int) -> None:
        if self.leading():
            super().delete_older_than(cutoff_ns)

    def upkeep(self, keep_s: int = UPKEEP_KEEP_S) -> bool:
        """Compaction, expiry of snapshots (older than `keep_s` and the last linked one) and
        cleanup of the files they held, by the leader alone; whether it ran."""
        if not self.leading():
            return False
        with self._lock:
            self._con.execute(lake_sql.FLUSH_INLINED).fetchall()
            self._con.execute(lake_sql.MERGE_FILES).fetchall()
            (linked,) = self._con.execute(lake_sql.LINKED_SNAPSHOT).fetchall()[0]
            (before_us,) = self._con.execute(lake_sql.EXPIRE_BEFORE_US, [keep_s, linked]).fetchall()[0]
            if before_us is not None:
                self._con.execute(lake_sql.expire_snapshots(before_us)).fetchall()
            self._con.execute(lake_sql.cleanup_files(keep_s)).fetchall()
        return True

    @property
    def leads(self) -> bool:
        """Whether this collector held the lake's leader lock when it last asked."""
        return self._leader is not None and self._leader.holding

    def close(self) -> None:
        if self._leader is not None:
            self._leader.release()
        super().close()
