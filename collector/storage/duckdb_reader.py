"""Every read of the DuckDB store: one method per question the query layer asks (SpanReader).

Each read runs on a cursor of its own (DuckDB's per-thread connection to the same database),
beside the writer. Driver errors become StoreUnavailable here, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import duckdb
import orjson

from collector.storage import cost_sql, group_rollup, map_sql, operations_sql, search_sql, trace_parts_sql
from collector.storage import duckdb_sql as sql
from collector.storage.protocols import (
    CostKey,
    CostLine,
    Grouping,
    HopRows,
    ServiceCount,
    SpanLink,
    Statement,
    StoredLog,
    StoredSpan,
    StoreUnavailable,
    Subject,
    ThrottleSource,
    TimeWindow,
    TraceSummary,
)
from spanlang import filter_ast as ast

LINKED_TRACES = "SELECT DISTINCT trace_id FROM span_links WHERE linked_trace_id = ? ORDER BY trace_id LIMIT ?"


class DuckDBReader:
    """SpanReader over cursors from `cursor` (which raises StoreUnavailable once the store is closed)."""

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self._cursor = cursor

    def rows(self, statement: Statement, doing: str = "querying") -> list[tuple[Any, ...]]:
        """Rows of one of storage's statements."""
        try:
            return self._cursor().execute(statement.text, list(statement.params)).fetchall()
        except duckdb.Error as exc:
            raise StoreUnavailable(f"{doing} failed: {exc}") from exc

    def services(self, window: TimeWindow) -> list[ServiceCount]:
        rows = self.rows(Statement(sql.SERVICES, (window.start_ns, window.end_ns)), "listing services")
        return [ServiceCount(name=r[0], spans=int(r[1])) for r in rows]

    def trace_spans(self, trace_id: bytes) -> list[StoredSpan]:
        key = uuid.UUID(bytes=trace_id)
        try:
            cursor = self._cursor()
            ((first_ns, last_ns),) = cursor.execute(trace_parts_sql.TRACE_RANGE, [key]).fetchall()
            # No parts: spans a Fluoro from before them wrote into a lake; look at every start then.
            where = [key, *((first_ns, last_ns) if first_ns is not None else trace_parts_sql.EVERY_START_NS)]
            result = cursor.execute(sql.TRACE_SPANS, where)
            names = [d[0] for d in result.description or []]
            rows = result.fetchall()
            annotations = cursor.execute(sql.TRACE_ANNOTATIONS, where).fetchall()
            links = cursor.execute(sql.TRACE_LINKS, where).fetchall()
        except duckdb.Error as exc:
            raise StoreUnavailable(f"reading a trace failed: {exc}") from exc
        values_of: dict[int, dict[str, str | float | bool]] = {}
        for span_id, key_name, text, number, flag in annotations:
            value = text if text is not None else (number if number is not None else flag)
            values_of.setdefault(span_id, {})[key_name] = value
        links_of: dict[int, list[SpanLink]] = {}
        for span_id, linked_trace, linked_span in links:
            links_of.setdefault(span_id, []).append(SpanLink(linked_trace.hex, f"{linked_span:016x}"))
        spans = []
        for row in rows:
            columns = dict(zip(names, row, strict=True))
            span_id = columns["span_id"]
            spans.append(stored_span(columns, values_of.get(span_id, {}), tuple(links_of.get(span_id, ()))))
        return spans

    def trace_logs(self, trace_id: bytes, limit: int) -> list[StoredLog]:
        rows = self.rows(Statement(sql.TRACE_LOGS, (uuid.UUID(bytes=trace_id), limit)), "reading a trace's logs")
        return [
            StoredLog(
                time_ns=int(time_ns),
                span_id=f"{span_id:016x}" if span_id is not None else None,
                service=service,
                severity_number=int(severity),
                severity_text=severity_text,
                body=body,
                attributes=orjson.loads(attributes) if attributes else {},
            )
            for time_ns, span_id, service, severity, severity_text, body, attributes in rows
        ]

    def linked_trace_ids(self, trace_id: bytes, limit: int) -> list[bytes]:
        rows = self.rows(Statement(LINKED_TRACES, (uuid.UUID(bytes=trace_id), limit)), "reading linked traces")
        return [other.bytes for (other,) in rows]

    def search_traces(self, window: TimeWindow, expr: ast.Expr | None, limit: int) -> list[TraceSummary]:
        return search_sql.summaries(self.rows(search_sql.search_statement(window, expr, limit), "searching traces"))

    def hop_rows(self, window: TimeWindow, expr: ast.Expr | None, max_rows: int, group: str | None = None) -> HopRows:
        ((rolled_until,),) = self.rows(Statement(map_sql.ROLLED_UNTIL), "reading the rollup's watermark")
        rolled_until_ns = int(rolled_until or 0)
        rolled = self._group_rollup(group) if group is not None else None
        rows = self.rows(map_sql.hops_statement(window, expr, rolled_until_ns, max_rows, rolled))
        counts = [(*row[1:14], row[15]) for row in rows if row[0] == map_sql.COUNTS_PART]
        latency = [row[1:] for row in rows if row[0] != map_sql.COUNTS_PART]
        return HopRows(counts, latency, truncated=max(len(counts), len(latency)) >= max_rows)

    def _group_rollup(self, group: str) -> map_sql.GroupRollup | None:
        """The group's rollup, if it has one for its filter as saved (none in a lake from before groups)."""
        try:
            found = group_rollup.coverage(self._cursor(), group)
        except duckdb.CatalogException:
            return None
        except duckdb.Error as exc:
            raise StoreUnavailable(f"reading a group's rollup failed: {exc}") from exc
        return map_sql.GroupRollup(*found) if found else None

    def throttle_sources(
        self, window: TimeWindow, expr: ast.Expr | None, limit: int, group: str | None = None
    ) -> list[ThrottleSource]:
        rolled = self._group_rollup(group) if group is not None and expr is not None else None
        if rolled is not None and expr is not None and map_sql.group_minutes(window, rolled)[1] > window.start_ns:
            rows = self.rows(map_sql.group_throttle_statement(window, expr, rolled, limit))
        else:
            rows = self.rows(map_sql.picked_statement(map_sql.THROTTLE_SOURCES, window, expr, limit))
        return [ThrottleSource(name=r[0], node_type=r[1], traces=int(r[2])) for r in rows]

    def figure_rows(
        self, window: TimeWindow, expr: ast.Expr | None, subject: Subject, grouping: Grouping
    ) -> list[tuple[Any, ...]]:
        return self.rows(map_sql.figures_statement(window, expr, subject, grouping), "reading analytics")

    def operations(self, window: TimeWindow, service: str, kind: str | None, limit: int) -> list[tuple[str, str]]:
        statement = Statement(sql.OPERATIONS, (window.start_ns, window.end_ns, service, kind, kind, limit))
        return [(str(name), str(kind_of)) for name, kind_of in self.rows(statement, "listing operations")]

    def operation_rows(self, window: TimeWindow, bounds_s: Sequence[float]) -> list[tuple[Any, ...]]:
        return self.rows(operations_sql.operations_statement(window, bounds_s), "reading span metrics")

    def cost_lines(
        self,
        window: TimeWindow,
        expr: ast.Expr | None,
        key: CostKey,
        prices: Mapping[str, float],
        limit: int,
        trace_id: bytes | None = None,
    ) -> list[CostLine]:
        trace_key = uuid.UUID(bytes=trace_id) if trace_id is not None else None
        statement = cost_sql.cost_statement(window, expr, key, prices, limit, trace_key)
        width = cost_sql.KEY_COLUMNS[key]
        return [
            CostLine(
                tuple(_key_text(v) for v in r[:width]),
                r[width],
                float(r[width + 1]),
                float(r[width + 2]),
                float(r[width + 3]),
            )
            for r in self.rows(statement, "reading cost")
        ]


def _key_text(value: object) -> str | None:
    """A cost key's value as text: a trace id as hex, a span id as 16 hex digits."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, int):
        return f"{value:016x}"
    return str(value)


def stored_span(
    row: dict[str, Any], annotations: dict[str, str | float | bool], links: tuple[SpanLink, ...]
) -> StoredSpan:
    """A row of TRACE_SPANS as a StoredSpan: hex ids, JSON columns parsed."""
    parent = row["parent_span_id"]
    return StoredSpan(
        trace_id=row["trace_id"].hex,
        span_id=f"{row['span_id']:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        service=row["service"],
        name=row["name"],
        kind=row["kind"],
        start_ns=row["start_ns"],
        duration_ns=row["duration_ns"],
        status_code=row["status_code"],
        status_message=row["status_message"],
        http_method=row["http_method"],
        http_route=row["http_route"],
        http_url=row["http_url"],
        http_status=row["http_status"],
        http_user_agent=row["http_user_agent"],
        error=row["error"],
        fault=row["fault"],
        throttle=row["throttle"],
        cold_start=bool(row["cold_start"]),
        origin=row["origin"],
        target_type=row["target_type"],
        target_name=row["target_name"],
        function_version=row["function_version"],
        user_id=row["user_id"],
        in_progress=row["in_progress"],
        source=row["source"],
        attributes=orjson.loads(row["attributes"]) if row["attributes"] else {},
        events=orjson.loads(row["events"]) if row["events"] else [],
        resource=orjson.loads(row["resource"]) if row["resource"] else {},
        annotations=annotations,
        links=links,
    )
