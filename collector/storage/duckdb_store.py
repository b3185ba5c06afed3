"""The DuckDB store: one file, one read-write process, writes from one thread.

The writer connection is used only by the ingest pipeline's writer thread; each read opens a
cursor (DuckDB's per-thread connection to the same database). External access (files, URLs,
extensions) is disabled for the whole database once the schema is in place, so no query can
reach outside the file. Driver errors are translated here, once, into StoreUnavailable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.model import LINK_SCHEMA, SPAN_COLUMNS, SpanBatch
from collector.service_map.roles import LINKED_SPAN_COLUMNS
from collector.storage import duckdb_sql as sql
from collector.storage import lake_sql
from collector.storage.duckdb_groups import DuckDBGroups
from collector.storage.duckdb_insights import DuckDBInsights
from collector.storage.duckdb_map import LINKED_SPAN_SCHEMA, DuckDBMapTables
from collector.storage.duckdb_memory import memory_limit_statement
from collector.storage.duckdb_reader import DuckDBReader
from collector.storage.lake_location import LAKE_ALIAS, LakeLocation
from collector.storage.lake_location import connect as lake_connect
from collector.storage.lake_location import ensure_tables as ensure_lake_tables
from collector.storage.lake_map import LakeMapTables
from collector.storage.leader_lock import LeaderLock
from collector.storage.open_reads import OpenReads
from collector.storage.protocols import StoreUnavailable
from collector.storage.recent_keys import FUTURE_SLACK_NS, MAX_FUTURE_IDS, NEVER_NS, RecentSpanIds
from collector.storage.resource_keys import KnownResources, key_resources
from collector.storage.trace_parts import trace_parts

_logger = logging.getLogger(__name__)
CHECKPOINT_THRESHOLD = "128MB"
ENGINE_THREADS = 1


class StoreLocked(StoreUnavailable):
    """Another process holds the database file."""


def _translate(exc: duckdb.Error, doing: str) -> StoreUnavailable:
    return StoreUnavailable(f"{doing} failed: {exc}")


SERVICE_INDEX = SPAN_COLUMNS.index("service")


# New files in the storage format of the DuckDB Fluoro pins (1.5): the default stays readable by
# DuckDB 1.0, which has no zstd for strings and would leave `attributes` uncompressed.
FILE_CONFIG: Final[dict[str, str | bool | int | float | list[str]]] = {"storage_compatibility_version": "v1.5.0"}


class DuckDBStore:
    """SpanWriter and StoreMaintenance over one DuckDB file; its SpanReader is ``reader``."""

    def __init__(
        self,
        path: str,
        lake: LakeLocation | None = None,
        *,
        read_only: bool = False,
        leader: LeaderLock | None = None,
        memory_limit_mib: int | None = None,
    ) -> None:
        """A DuckDB file at `path`, or with `lake` the lake's tables (`path` is then unused);
        `read_only` (lake only: a file has one process) for readers beside the collectors;
        `leader`: the lake's leader lock (by default its PostgreSQL advisory lock);
        `memory_limit_mib`: DuckDB's buffer pool bound (None: DuckDB's own, 80% of the machine)."""
        limit = None if memory_limit_mib is None else memory_limit_statement(memory_limit_mib)
        self.path = path if lake is None else lake.describe()
        self.read_only = read_only
        self._lake = lake
        self._insert_resources = sql.INSERT_RESOURCES if lake is None else lake_sql.INSERT_RESOURCES
        self._con = self._open_file(path) if lake is None else lake_connect(lake)
        self._write_lock = threading.Lock()
        self._known_resources = KnownResources()
        self._registered: list[str] = []
        self._open_reads = OpenReads()
        # A daemon has no terminal to draw DuckDB's progress bar on.
        self._con.execute("SET enable_progress_bar = false")
        if limit is not None:
            self._con.execute(limit)
        # One engine thread per statement: the statements here are small (a write, 2 s of
        # linking), and splitting them across both cores cost more CPU than it saved (~20% of a
        # write's, bench/ingest.py steady), while the writer, the linker and the query threads
        # already keep both cores busy under a flood. Queries over 10M spans stay within their
        # targets on one (bench/query.py: map 176 ms, filter 225 ms).
        self._con.execute(f"SET threads = {ENGINE_THREADS}")
        # Arrow read back (for linking) keeps UUIDs as UUIDs, as they went in (and BOOLEAN as
        # the bool8 extension: readers cast to the schemas in model.py).
        self._con.execute("SET arrow_lossless_conversion = true")
        if lake is None:
            self._migrate()
            # Fewer, larger checkpoints: each rewrites the table's last row group, so at the default
            # 16 MB of WAL the same rows were compressed again and again (bench/ingest.py).
            self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            # No SQL here reads files; a lake's Parquet files are read through this very access.
            self._con.execute("SET enable_external_access = false")
            self.map_tables: DuckDBMapTables = DuckDBMapTables(self._new_cursor())
        else:
            try:
                ensure_lake_tables(self._con, lake, read_only=read_only)
            except StoreUnavailable:
                self._con.close()
                raise
            if not read_only and leader is None:
                leader = LeaderLock(lake.libpq(), password=lake.password)
            self.map_tables = LakeMapTables(self._new_cursor(), None if read_only else leader)
        self._recent = self._recent_span_ids()
        self._closed = False
        self.reader = DuckDBReader(self._cursor)
        self.groups = DuckDBGroups(self._cursor, read_only=read_only)
        self.insights = DuckDBInsights(self._cursor, read_only=read_only)

    @staticmethod
    def _open_file(path: str) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(path, config=FILE_CONFIG)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(f"database {path} is in use by another process") from exc
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc

    def _recent_span_ids(self) -> RecentSpanIds:
        """After opening: the horizon past the newest stored span, spans from the future kept apart."""
        future_from_ns = time.time_ns() + FUTURE_SLACK_NS
        (newest,) = self._con.execute(sql.NEWEST_START_BEFORE, [future_from_ns]).fetchall()[0]
        future = self._con.execute(sql.STARTING_FROM, [future_from_ns, MAX_FUTURE_IDS + 1]).fetchall()
        if len(future) > MAX_FUTURE_IDS:
            return RecentSpanIds(horizon_ns=NEVER_NS)
        return RecentSpanIds(horizon_ns=(newest or 0) + 1, future=dict(future))

    def _migrate(self) -> None:
        con = self._con
        con.execute(sql.CREATE_VERSION_TABLE)
        row = con.execute(sql.READ_VERSION).fetchone()
        current = int(row[0]) if row else 0
        for version, statements in sql.MIGRATIONS:
            if version <= current:
                continue
            con.execute("BEGIN")
            for statement in statements:
                con.execute(statement)
            con.execute(sql.WRITE_VERSION, [version])
            con.execute("COMMIT")
            _logger.info("database %s migrated to schema version %d", self.path, version)

    @property
    def schema_version(self) -> int:
        row = self._cursor().execute(sql.READ_VERSION).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ writing

    def write(self, batches: Sequence[SpanBatch]) -> int:
        """Store the batches (spans and log records) in one transaction; returns how many new
        spans were stored."""
        if self.read_only:
            raise StoreUnavailable("this store was opened read-only")
        spans = pa.concat_tables([b.spans for b in batches])
        with_logs = [b.logs for b in batches if b.logs.num_rows]  # most groups hold none: nothing to join
        logs = pa.concat_tables(with_logs) if with_logs else None
        if spans.num_rows == 0:
            if logs is not None:
                self._write_logs(logs)
            return 0
        keyed = key_resources(spans)
        # Decoders share each service name among its spans (a dictionary); DuckDB and the
        # linker take plain strings (X-Ray's 200 characters at most, so this stays small).
        spans = keyed.spans.set_column(SERVICE_INDEX, "service", pc.cast(keyed.spans.column("service"), pa.string()))
        new_resources = self._known_resources.unknown(keyed.resources)
        annotations = pa.concat_tables([b.annotations for b in batches])
        links = pa.concat_tables([b.links for b in batches])
        bounds = pc.min_max(spans.column("start_ns")).as_py()
        window = [bounds["min"], bounds["max"]]
        with self._write_lock:
            con = self._con
            try:
                con.execute("BEGIN")
                if new_resources.num_rows:
                    self._register("incoming_resources", new_resources)
                    con.execute(self._insert_resources)
                if logs is not None:
                    con.from_arrow(logs).insert_into("logs")
                if self._surely_new(spans):
                    stored = self._append(spans, annotations, links)
                    to_link = (spans.select(LINKED_SPAN_COLUMNS), links)
                else:
                    stored, to_link = self._insert_checked(spans, annotations, links, window)
                con.execute("COMMIT")
                self._known_resources.remember(new_resources)
                self._recent.committed(spans)
                self.map_tables.queue(*to_link, self._committed_snapshot(to_link[0]))
            except duckdb.Error as exc:
                self._rollback()
                raise _translate(exc, "storing spans") from exc
            finally:
                while self._registered:
                    self._unregister(self._registered.pop())
        return stored

    def _write_logs(self, logs: pa.Table) -> None:
        """A group of log records alone, in a transaction of its own."""
        with self._write_lock:
            try:
                self._con.execute("BEGIN")
                self._con.from_arrow(logs).insert_into("logs")
                self._con.execute("COMMIT")
            except duckdb.Error as exc:
                self._rollback()
                raise _translate(exc, "storing log records") from exc

    def _committed_snapshot(self, linked: pa.Table) -> int | None:
        """The lake snapshot the write just committed (a commit that stored nothing made none)."""
        if self._lake is None or not linked.num_rows:
            return None
        (row,) = self._con.execute(lake_sql.LAST_COMMITTED).fetchall()
        return int(row[0])

    def _surely_new(self, spans: pa.Table) -> bool:
        """The common case, told without a query: no key is stored yet and none repeats in the group."""
        return not may_complete_in_progress(spans) and self._recent.surely_new(spans) and keys_unique(spans)

    def _insert_checked(
        self, spans: pa.Table, annotations: pa.Table, links: pa.Table, window: list[int]
    ) -> tuple[int, tuple[pa.Table, pa.Table]]:
        """Resends, repeats and in-progress completions: the exact SQL path; (stored, spans to link)."""
        con = self._con
        self._register("incoming", spans)
        self._register("incoming_links", links)
        if may_complete_in_progress(spans):
            self._delete_completed_in_progress(window)
        resent = con.execute(sql.COUNT_ALREADY_STORED, window).fetchall()[0][0]
        if resent == 0 and keys_unique(spans):
            return self._append(spans, annotations, links), (spans.select(LINKED_SPAN_COLUMNS), links)
        stored = self._insert_new_only(annotations, window)
        fresh = self._fresh_rows()
        con.from_arrow(trace_parts(fresh[0])).insert_into("trace_parts")
        return stored, fresh

    def _append(self, spans: pa.Table, annotations: pa.Table, links: pa.Table) -> int:
        con = self._con
        con.from_arrow(spans).insert_into("spans")
        con.from_arrow(trace_parts(spans)).insert_into("trace_parts")
        if annotations.num_rows:
            con.from_arrow(annotations).insert_into("annotations")
        if links.num_rows:
            con.from_arrow(links).insert_into("span_links")
        return int(spans.num_rows)

    def _insert_new_only(self, annotations: pa.Table, window: list[int]) -> int:
        con = self._con
        self._register("incoming_annotations", annotations)
        if annotations.num_rows:
            con.execute(sql.INSERT_ANNOTATIONS, window).fetchall()
        con.execute(sql.CREATE_FRESH_SPANS, window)
        con.execute(sql.CREATE_FRESH_LINKS, window)
        for statement in sql.INSERT_FRESH:
            con.execute(statement)
        row = con.execute("SELECT count(*) FROM fresh").fetchall()
        return int(row[0][0]) if row else 0

    def _fresh_rows(self) -> tuple[pa.Table, pa.Table]:
        """The slow path's new spans and links, for linking, before their temporary tables go."""
        columns = ", ".join(LINKED_SPAN_COLUMNS)
        # As the fast path hands them over: DuckDB's lossless Arrow has BOOLEAN as bool8.
        spans = self._con.sql(f"SELECT {columns} FROM fresh").to_arrow_table().cast(LINKED_SPAN_SCHEMA)
        links = self._con.sql("SELECT * FROM fresh_links").to_arrow_table().cast(LINK_SCHEMA)
        for statement in sql.DROP_FRESH:
            self._con.execute(statement)
        return spans, links

    def _delete_completed_in_progress(self, window: list[int]) -> None:
        for table, span_column in sql.REPLACED_IN_PROGRESS_ROWS:
            statement = sql.DELETE_REPLACED_IN_PROGRESS.format(table=table, span_column=span_column)
            self._con.execute(statement, window + window).fetchall()

    def _rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):  # no transaction was open
            self._con.execute("ROLLBACK")

    def _register(self, name: str, table: pa.Table) -> None:
        """Name an Arrow table for this write's statements (unregistered when the write ends)."""
        self._con.register(name, table)
        self._registered.append(name)

    def _unregister(self, name: str) -> None:
        with contextlib.suppress(duckdb.Error):  # nothing was registered under that name
            self._con.unregister(name)

    def delete_older_than(self, cutoff_ns: int) -> int:
        """Retention: drop spans (and their annotations and links) that started before the cutoff
        (in a lake, the leader alone: one set of deletes, not one per collector)."""
        if isinstance(self.map_tables, LakeMapTables) and not self.map_tables.leading():
            return 0
        with self._write_lock:
            try:
                row = self._con.execute(sql.DELETE_OLDER_THAN[0], [cutoff_ns]).fetchone()
                for statement in sql.DELETE_OLDER_THAN[1:]:
                    self._con.execute(statement, [cutoff_ns])
                if row and row[0]:
                    self._con.execute(sql.DELETE_UNUSED_RESOURCES)
                    self._known_resources.forget()
            except duckdb.Error as exc:
                raise _translate(exc, "retention") from exc
        self.map_tables.delete_older_than(cutoff_ns)
        return int(row[0]) if row else 0

    def link_new_spans(self, now_ns: int | None = None) -> int:
        """Resolve the service-map calls of spans stored since the last call; how many spans."""
        return self.map_tables.link_new_spans(now_ns)

    def expire_pending_calls(self, waited_since_ns: int) -> None:
        """Children whose parent has not arrived since `waited_since_ns` join the map as entries."""
        self.map_tables.expire_pending(waited_since_ns)

    def upkeep(self) -> None:
        """A lake's compaction, snapshot expiry and file cleanup (leader only); a DuckDB file
        checkpoints itself."""
        if isinstance(self.map_tables, LakeMapTables):
            try:
                self.map_tables.upkeep()
            except duckdb.Error as exc:
                raise _translate(exc, "lake upkeep") from exc

    def roll_up_calls(self, settled_before_ns: int) -> None:
        """Fold whole minutes of calls that started before `settled_before_ns` into the rollup,
        and into each group's."""
        self.map_tables.roll_up(settled_before_ns, self.groups.groups())

    # ------------------------------------------------------------------ reading

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._open_reads.add(self._new_cursor())

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the same database (a lake's in use, as USE is per connection)."""
        cursor = self._con.cursor()
        if self._lake is not None:
            cursor.execute(f"USE {LAKE_ALIAS}")
        return cursor

    # ------------------------------------------------------------------ housekeeping

    def file_size_bytes(self) -> int:
        """The database file and its WAL, or a lake's data and delete files."""
        if self._lake is not None:
            try:
                (row,) = self._cursor().execute(lake_sql.DATA_BYTES).fetchall()
            except duckdb.Error as exc:
                raise _translate(exc, "sizing the lake") from exc
            return int(row[0] or 0)
        total = 0
        for path in (self.path, self.path + ".wal"):
            with contextlib.suppress(OSError):  # no WAL between checkpoints
                total += os.path.getsize(path)
        return total

    def close(self) -> None:
        """Close the database; a read still running is interrupted (its caller gets
        StoreUnavailable), since DuckDB's close waits for every cursor's statement to end."""
        with self._write_lock:
            if not self._closed:
                self._closed = True
                self._open_reads.interrupt()
                self.map_tables.close()
                self._con.close()


def may_complete_in_progress(spans: pa.Table) -> bool:
    """Only X-Ray sends in-progress segments, so only its batches can complete one."""
    return bool(pc.any(pc.equal(spans.column("source"), "xray")).as_py())


def keys_unique(spans: pa.Table) -> bool:
    """True when no (trace_id, span_id) repeats in the group (distinct span ids settle it at once)."""
    if int(pc.count_distinct(spans.column("span_id")).as_py()) == spans.num_rows:
        return True
    # The same span id in different traces (ids some SDKs derive, or chance): count the pairs.
    pairs = pa.table({"trace": spans.column("trace_id").combine_chunks().storage, "span": spans.column("span_id")})
    return bool(pairs.group_by(["trace", "span"]).aggregate([]).num_rows == spans.num_rows)
