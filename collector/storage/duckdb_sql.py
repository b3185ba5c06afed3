"""Every SQL statement the DuckDB store runs, in one place.

Values are always bound parameters (``?``); nothing from a request is formatted into this
text. Migrations are numbered: the store applies those newer than the file's recorded version.
"""

from __future__ import annotations

import re
from typing import Final

from collector.storage import calls_sql, rollup_sql, side_tables_sql, trace_parts_sql

SPAN_TABLE_COLUMNS: Final = """
    trace_id UUID NOT NULL,
    span_id UBIGINT NOT NULL,
    parent_span_id UBIGINT,
    service VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    start_ns BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    status_code UTINYINT NOT NULL,
    status_message VARCHAR,
    http_method VARCHAR,
    http_route VARCHAR,
    http_url VARCHAR,
    http_status USMALLINT,
    http_user_agent VARCHAR,
    error BOOLEAN NOT NULL,
    fault BOOLEAN NOT NULL,
    throttle BOOLEAN NOT NULL,
    cold_start BOOLEAN,
    origin VARCHAR,
    target_type VARCHAR,
    target_name VARCHAR,
    function_version VARCHAR,
    user_id VARCHAR,
    in_progress BOOLEAN NOT NULL,
    source VARCHAR NOT NULL,
    attributes VARCHAR,
    events VARCHAR,
    resource VARCHAR
"""

# The table as it is now (migrations 1 and 4 made it; 5 fixed its attributes' compression).
RESOURCE_COLUMN, RESOURCE_ID_COLUMN = ",\n    resource VARCHAR\n", ",\n    resource_id UBIGINT\n"
SPAN_COLUMNS: Final = SPAN_TABLE_COLUMNS.replace(
    "attributes VARCHAR", "attributes VARCHAR USING COMPRESSION zstd"
).replace(RESOURCE_COLUMN, RESOURCE_ID_COLUMN)

CREATE_RESOURCES: Final = "CREATE TABLE resources (resource_id UBIGINT PRIMARY KEY, resource VARCHAR NOT NULL)"
# OTLP log records (collector/normalize/otlp_logs.py), in time order as they arrive; found by
# trace (the trace view, `log CONTAINS`) within the time window the trace's spans give.
CREATE_LOGS: Final = """CREATE TABLE IF NOT EXISTS logs (
    time_ns BIGINT NOT NULL, trace_id UUID, span_id UBIGINT, service VARCHAR NOT NULL,
    severity_number UTINYINT NOT NULL, severity_text VARCHAR,
    body VARCHAR USING COMPRESSION zstd, attributes VARCHAR USING COMPRESSION zstd)"""

CREATE_ANNOTATIONS: Final = """CREATE TABLE annotations (
    trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, start_ns BIGINT NOT NULL,
    key VARCHAR NOT NULL, str_value VARCHAR, num_value DOUBLE, bool_value BOOLEAN)"""
CREATE_SPAN_LINKS: Final = """CREATE TABLE span_links (
    trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, start_ns BIGINT NOT NULL,
    linked_trace_id UUID NOT NULL, linked_span_id UBIGINT NOT NULL)"""


def _ids_run_length(columns: str) -> str:
    """`columns` with every UUID column run-length encoded.

    Left to choose, DuckDB bit-packs trace ids that share their leading bytes (X-Ray's and
    Fluoro's tracer's begin with the trace's start second) whenever a table's rows hold short
    runs of each: 25% smaller than raw, but a 128-bit value then decodes in ~50 ns where a raw
    or run-length one takes ~10 (1M ids scanned: 49.7 vs 10.2 / 12.2 ms). Every trace lookup,
    search and filter scans these columns: bench/query.py's filter search at 10M spans on X-Ray
    ids took 308 ms with the annotations' ids bit-packed, 252 run-length. Run-length costs 2
    bytes more than raw for a lone value, and saves 16 on every repeat."""
    return re.sub(r"(\w+ UUID)( NOT NULL)?", r"\1\2 USING COMPRESSION rle", columns)


def _rebuilt(table: str, columns: str) -> tuple[str, ...]:
    """Statements that rebuild `table` (a constant name) with `columns`, keeping its rows."""
    return (
        f"CREATE TABLE {table}_rebuilt ({columns})",
        f"INSERT INTO {table}_rebuilt BY NAME SELECT * FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_rebuilt RENAME TO {table}",
    )


def _columns_of(create_table: str) -> str:
    """The column list of a CREATE TABLE statement."""
    return create_table[create_table.index("(") + 1 : create_table.rindex(")")]


MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            f"CREATE TABLE spans ({SPAN_TABLE_COLUMNS})",
            CREATE_ANNOTATIONS,
            CREATE_SPAN_LINKS,
        ),
    ),
    (2, calls_sql.MIGRATION),
    (3, rollup_sql.MIGRATION),
    # Resources once each (resource_keys.py says why). Keys of migrated rows are DuckDB's hash of
    # the text rather than resource_keys' hash: a key only has to be unique, not reproducible.
    (
        4,
        (
            CREATE_RESOURCES,
            "INSERT INTO resources SELECT DISTINCT hash(resource), resource FROM spans WHERE resource IS NOT NULL",
            # Rebuilt, not altered: DuckDB 1.5 refuses to alter a table and write it in one transaction.
            f"CREATE TABLE spans_v4 ({SPAN_TABLE_COLUMNS.replace(RESOURCE_COLUMN, RESOURCE_ID_COLUMN)})",
            "INSERT INTO spans_v4 SELECT * EXCLUDE (resource), hash(resource) FROM spans",
            "DROP TABLE spans",
            "ALTER TABLE spans_v4 RENAME TO spans",
        ),
    ),
    # The attributes' JSON compressed with zstd: DuckDB's own pick (dictionary + FSST) cost 1.6 us
    # of checkpoint a span and kept 65 bytes of it; zstd 0.7 us and 24 bytes, scans as fast
    # (bench/ingest.py). A column's compression is fixed when it is created: the table is rebuilt.
    (
        5,
        (
            f"CREATE TABLE spans_v5 ({SPAN_COLUMNS})",
            "INSERT INTO spans_v5 SELECT * FROM spans",
            "DROP TABLE spans",
            "ALTER TABLE spans_v5 RENAME TO spans",
        ),
    ),
    (6, calls_sql.PENDING_INIT_MIGRATION),
    (7, (side_tables_sql.CREATE_GROUPS,)),
    (8, (side_tables_sql.CREATE_INSIGHTS,)),
    (9, rollup_sql.GROUP_TABLES),
    (10, rollup_sql.SAMPLING_WEIGHT_MIGRATION),
    (11, (CREATE_LOGS,)),
    # The tables' UUID columns run-length encoded (_ids_run_length says why), each rebuilt as it
    # is now (spans took their sampling weight last, in version 10).
    (
        12,
        (
            *_rebuilt("spans", _ids_run_length(SPAN_COLUMNS + ",\n    sampling_weight DOUBLE")),
            *_rebuilt("calls", _ids_run_length(calls_sql.CALL_COLUMNS)),
            *_rebuilt("annotations", _ids_run_length(_columns_of(CREATE_ANNOTATIONS))),
            *_rebuilt("span_links", _ids_run_length(_columns_of(CREATE_SPAN_LINKS))),
            *_rebuilt("logs", _ids_run_length(_columns_of(CREATE_LOGS))),
        ),
    ),
    # Per-trace summaries for searches (trace_parts_sql.py says why), the stored spans' made once
    # (afresh: a file whose recorded version was set back keeps its tables).
    (13, ("DROP TABLE IF EXISTS trace_parts", trace_parts_sql.CREATE_TRACE_PARTS, trace_parts_sql.BACKFILL)),
)

CREATE_VERSION_TABLE: Final = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
READ_VERSION: Final = "SELECT coalesce(max(version), 0) FROM schema_version"
WRITE_VERSION: Final = "INSERT INTO schema_version VALUES (?)"

# --- ingest: one group commit. `incoming*` are Arrow tables registered for the transaction.
# The common case (no key of the group is stored yet, none repeats) is one semi-join count and
# three plain appends; the filtered statements below run only when a resend is found.
# A resent span repeats its start time, so looking for duplicates only among stored spans
# whose start lies in the batch's [min, max] start range is exact, and zone maps on the
# time-ordered start_ns keep that scan small.
COUNT_ALREADY_STORED: Final = """
    SELECT count(*) FROM incoming x
    WHERE EXISTS (SELECT 1 FROM spans s
                  WHERE s.start_ns BETWEEN ? AND ? AND s.trace_id = x.trace_id AND s.span_id = x.span_id)
"""

NEWEST_START_BEFORE: Final = "SELECT max(start_ns) FROM spans WHERE start_ns < ?"
STARTING_FROM: Final = "SELECT span_id, start_ns FROM spans WHERE start_ns >= ? LIMIT ?"

# The rows of the stored in-progress spans an incoming completion replaces, in `table` where
# `span_column` holds the span's id (constants: trace_parts keys an in-progress span's part by it).
DELETE_REPLACED_IN_PROGRESS: Final = """
    DELETE FROM {table} t USING (
        SELECT s.trace_id, s.span_id FROM spans s JOIN incoming i
          ON s.trace_id = i.trace_id AND s.span_id = i.span_id
        WHERE s.in_progress AND NOT i.in_progress AND s.start_ns BETWEEN ? AND ?
    ) r
    WHERE t.trace_id = r.trace_id AND t.{span_column} = r.span_id AND t.start_ns BETWEEN ? AND ?
"""
# spans last: the statement finds the replaced spans among the stored ones.
REPLACED_IN_PROGRESS_ROWS: Final = (
    ("trace_parts", "in_progress_span_id"),
    ("annotations", "span_id"),
    ("span_links", "span_id"),
    ("spans", "span_id"),
)

NOT_STORED: Final = """
    NOT EXISTS (SELECT 1 FROM spans s
                WHERE s.start_ns BETWEEN ? AND ? AND s.trace_id = x.trace_id AND s.span_id = x.span_id)
"""

# The slow path first picks this write's new spans and links into temporary tables, so that
# the spans, links and the calls resolved from them are exactly the ones stored.
CREATE_FRESH_SPANS: Final = f"""
    CREATE OR REPLACE TEMP TABLE fresh AS
    SELECT * FROM (
        SELECT DISTINCT ON (trace_id, span_id) * FROM incoming ORDER BY trace_id, span_id, in_progress
    ) x
    WHERE {NOT_STORED}
"""
CREATE_FRESH_LINKS: Final = f"""
    CREATE OR REPLACE TEMP TABLE fresh_links AS SELECT DISTINCT * FROM incoming_links x WHERE {NOT_STORED}
"""
INSERT_FRESH: Final = ("INSERT INTO spans SELECT * FROM fresh", "INSERT INTO span_links SELECT * FROM fresh_links")
DROP_FRESH: Final = ("DROP TABLE IF EXISTS fresh", "DROP TABLE IF EXISTS fresh_links")

INSERT_RESOURCES: Final = "INSERT OR IGNORE INTO resources SELECT * FROM incoming_resources"

INSERT_ANNOTATIONS: Final = f"""
    INSERT INTO annotations
    SELECT DISTINCT ON (trace_id, span_id, key) * FROM incoming_annotations x WHERE {NOT_STORED}
"""

# --- retention
DELETE_OLDER_THAN: Final = (
    "DELETE FROM spans WHERE start_ns < ?",
    "DELETE FROM annotations WHERE start_ns < ?",
    "DELETE FROM span_links WHERE start_ns < ?",
    "DELETE FROM logs WHERE time_ns < ?",
    trace_parts_sql.DELETE_OLDER_THAN,
)
DELETE_UNUSED_RESOURCES: Final = """
    DELETE FROM resources WHERE resource_id NOT IN (SELECT resource_id FROM spans WHERE resource_id IS NOT NULL)
"""

# --- reads
SERVICES: Final = """
    SELECT service, count(*) AS spans FROM spans
    WHERE start_ns >= ? AND start_ns < ? AND service <> ''
    GROUP BY service ORDER BY service
"""

# A service's operations (span names) and their kinds, for Jaeger's API (collector/api/jaeger_routes.py).
OPERATIONS: Final = """
    SELECT DISTINCT name, kind FROM spans
    WHERE start_ns >= ? AND start_ns < ? AND service = ? AND (? IS NULL OR kind = ?)
    ORDER BY name, kind LIMIT ?
"""

TRACE_SPANS: Final = """
    SELECT s.* EXCLUDE (resource_id), r.resource FROM spans s
    LEFT JOIN (SELECT DISTINCT resource_id, resource FROM resources) r ON r.resource_id = s.resource_id
    WHERE s.trace_id = ? AND s.start_ns BETWEEN ? AND ? ORDER BY s.start_ns, s.span_id
"""
TRACE_ANNOTATIONS: Final = """SELECT span_id, key, str_value, num_value, bool_value FROM annotations
    WHERE trace_id = ? AND start_ns BETWEEN ? AND ? ORDER BY key"""
TRACE_LOGS: Final = """
    SELECT time_ns, span_id, service, severity_number, severity_text, body, attributes FROM logs
    WHERE trace_id = ? ORDER BY time_ns, span_id LIMIT ?
"""
TRACE_LINKS: Final = (
    "SELECT span_id, linked_trace_id, linked_span_id FROM span_links WHERE trace_id = ? AND start_ns BETWEEN ? AND ?"
)
