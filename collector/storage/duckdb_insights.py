"""Insights in the database beside the spans, each kept whole as JSON and replaced as it changes."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import orjson

from collector.insights.insight import Insight
from collector.storage import side_tables_sql as sql
from collector.storage.protocols import InsightScope
from collector.storage.side_table import SideTable


class DuckDBInsights:
    """InsightStore over a connection's cursors."""

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection], *, read_only: bool = False) -> None:
        self._table = SideTable(cursor, sql.CREATE_INSIGHTS, "insights", read_only=read_only)

    def save_insights(self, insights: list[Insight]) -> None:
        """Add them, or replace those of their ids (one transaction)."""

        def replace(con: duckdb.DuckDBPyConnection) -> int:
            for insight in insights:
                con.execute(sql.DELETE_INSIGHT, [insight.id])
                row = [insight.id, insight.group, insight.state, insight.start_ns, insight.end_ns]
                con.execute(sql.INSERT_INSIGHT, [*row, orjson.dumps(insight.to_json()).decode()])
            return len(insights)

        if insights:
            self._table.change(replace)

    def insights(self, start_ns: int, end_ns: int, limit: int, scope: InsightScope | None = None) -> list[Insight]:
        """Insights that were open at some time in [start, end), newest first (of `scope` only, if
        given: chosen before the limit, so another group's many do not crowd one group's out)."""
        if scope is None:
            rows = self._table.read(sql.SELECT_INSIGHTS, [end_ns, start_ns, limit])
        else:
            params = [end_ns, start_ns, scope.group, scope.state, scope.state, limit]
            rows = self._table.read(sql.SELECT_SCOPE_INSIGHTS, params)
        return [Insight.from_json(orjson.loads(body)) for (body,) in rows]

    def open_insights(self) -> list[Insight]:
        return [Insight.from_json(orjson.loads(body)) for (body,) in self._table.read(sql.SELECT_OPEN_INSIGHTS)]

    def delete_closed_before(self, cutoff_ns: int) -> None:
        """Retention: insights that closed before the cutoff go."""

        def delete(con: duckdb.DuckDBPyConnection) -> int:
            con.execute(sql.DELETE_INSIGHTS_BEFORE, [cutoff_ns])
            return 0

        self._table.change(delete)
