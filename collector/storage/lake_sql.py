"""The SQL lake mode runs where the DuckDB file's differs.

A DuckLake table has no keys or indexes and chooses its own Parquet encodings, so the lake's
tables are the file's current layout (duckdb_sql.MIGRATIONS' end state) without PRIMARY KEY or
a column's compression. A new lake is created at the newest schema version in one transaction
(under an advisory lock, so collectors starting together create it once).

Spans, annotations, links and resources are only ever appended by the collectors; everything
derived from them (calls, pending, the rollup) is written by the one collector that holds the
leader lock, which links the spans every collector committed, snapshot by snapshot: it keeps
the last snapshot it linked in ``link_state``, in the same transaction as the calls it made.
"""

from __future__ import annotations

import re
from typing import Final

from collector.storage import calls_sql, duckdb_sql, rollup_sql, side_tables_sql, trace_parts_sql

LAKE_SCHEMA_VERSION: Final = max(version for version, _ in duckdb_sql.MIGRATIONS)


def _lake_ddl(statement: str) -> str:
    """A file's CREATE TABLE as a lake's: no keys, no column compression."""
    without_key = statement.replace(" PRIMARY KEY", "")
    return re.sub(r" USING COMPRESSION \w+", "", without_key)


CREATE_TABLES: Final = (
    _lake_ddl(f"CREATE TABLE spans ({duckdb_sql.SPAN_COLUMNS}, sampling_weight DOUBLE)"),
    *duckdb_sql.MIGRATIONS[0][1][1:],  # annotations, span_links
    _lake_ddl(duckdb_sql.CREATE_RESOURCES),
    _lake_ddl(duckdb_sql.CREATE_LOGS),
    _lake_ddl(trace_parts_sql.CREATE_TRACE_PARTS),
    *calls_sql.MIGRATION,
    *rollup_sql.MIGRATION,
    *rollup_sql.GROUP_TABLES,
    side_tables_sql.CREATE_GROUPS,
    side_tables_sql.CREATE_INSIGHTS,
    duckdb_sql.CREATE_VERSION_TABLE,
    f"INSERT INTO schema_version VALUES ({LAKE_SCHEMA_VERSION})",
    "CREATE TABLE link_state (linked_snapshot BIGINT NOT NULL)",
    "INSERT INTO link_state VALUES (-1)",
)
DATA_BYTES: Final = "SELECT sum(file_size_bytes + delete_file_size_bytes) FROM ducklake_table_info('lake')"
# Tables a later Fluoro added, made in a lake an earlier one created (names and statements).
LATER_TABLES: Final = (
    ("group_throttle_minutes", rollup_sql.GROUP_TABLES),
    ("logs", (_lake_ddl(duckdb_sql.CREATE_LOGS),)),
    ("trace_parts", (_lake_ddl(trace_parts_sql.CREATE_TRACE_PARTS), trace_parts_sql.BACKFILL)),
)
TABLE_EXISTS: Final = "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND table_name = ?"
# Columns a later Fluoro added (table, column, statement), made after the later tables.
LATER_COLUMNS: Final = tuple(
    (table, column, rollup_sql.add_double_column(table, column)) for table, column in rollup_sql.SAMPLING_WEIGHT_COLUMNS
)
COLUMN_EXISTS: Final = """SELECT count(*) FROM duckdb_columns()
    WHERE database_name = 'lake' AND table_name = ? AND column_name = ?"""
TABLES_EXIST: Final = "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND table_name = 'spans'"

# Two collectors may store the same resource at once: the row is the same (its key is a hash
# of its text), and readers take each key once.
INSERT_RESOURCES: Final = """
    INSERT INTO resources SELECT * FROM incoming_resources
    WHERE resource_id NOT IN (SELECT resource_id FROM resources)
"""

# --- the leader's linking: spans committed by any collector since the last snapshot linked.
CURRENT_SNAPSHOT: Final = "SELECT id FROM lake.current_snapshot()"
# The snapshot a connection's last COMMIT made: a collector's own writes, kept for its linking.
LAST_COMMITTED: Final = "SELECT id FROM lake.last_committed_snapshot()"
SPANS_TABLE_ID: Final = "SELECT table_id FROM ducklake_table_info('lake') WHERE table_name = 'spans'"
# The snapshots in (?, ?] that added spans, in files or inlined in the catalog.
SPANS_INSERTED_IN: Final = """
    SELECT snapshot_id FROM lake.snapshots() WHERE snapshot_id > ? AND snapshot_id <= ?
    AND list_contains(coalesce(changes['tables_inserted_into'], []) || coalesce(changes['inlined_insert'], []), ?)
"""
LINKED_SNAPSHOT: Final = "SELECT linked_snapshot FROM link_state"
SET_LINKED_SNAPSHOT: Final = "UPDATE link_state SET linked_snapshot = ?"


def inserted_since(table: str, columns: str) -> str:
    """Rows of `table` (a constant name) inserted in snapshots (?, ?]; its columns given."""
    return f"""SELECT {columns} FROM lake.table_changes('{table}', ? + 1, ?)
               WHERE change_type = 'insert'"""


# --- the leader's upkeep: compaction, snapshot expiry and file cleanup (lake_map.py says when).
# Merging keeps each row's snapshot, so the change feed linking reads is whole across a merge;
# snapshots are expired only before the last one linked, so the feed still has what is to come.
# Small commits are inlined into the catalog's tables; flushed to Parquet, then merged.
# Each is read as a count of what it did: its rows hold timestamps Python would need pytz for.
FLUSH_INLINED: Final = "SELECT count(*) FROM ducklake_flush_inlined_data('lake')"
MERGE_FILES: Final = "SELECT count(*) FROM ducklake_merge_adjacent_files('lake')"
EXPIRE_BEFORE_US: Final = """
    SELECT epoch_us(least(now() - to_seconds(?), (SELECT snapshot_time FROM lake.snapshots() WHERE snapshot_id = ?)))
"""


def expire_snapshots(before_us: int) -> str:
    """Expire snapshots older than `before_us` (an int computed by EXPIRE_BEFORE_US, not input)."""
    return f"SELECT count(*) FROM ducklake_expire_snapshots('lake', older_than => make_timestamptz({int(before_us)}))"


def cleanup_files(keep_s: int) -> str:
    """Delete files scheduled for deletion more than `keep_s` ago (a reader may still scan them)."""
    return f"SELECT count(*) FROM ducklake_cleanup_old_files('lake', older_than => now() - to_seconds({int(keep_s)}))"
