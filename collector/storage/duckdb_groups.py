"""Groups in the database beside the spans (a file's or a lake's trace_groups table)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from collector.storage import side_tables_sql as sql
from collector.storage.protocols import Group
from collector.storage.side_table import SideTable


class DuckDBGroups:
    """GroupStore over a connection's cursors."""

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection], *, read_only: bool = False) -> None:
        self._table = SideTable(cursor, sql.CREATE_GROUPS, "groups", read_only=read_only)

    def groups(self) -> list[Group]:
        return [_group(row) for row in self._table.read(sql.SELECT_GROUPS)]

    def group(self, name: str) -> Group | None:
        rows = self._table.read(sql.SELECT_GROUP, [name])
        return _group(rows[0]) if rows else None

    def save_group(self, group: Group) -> None:
        def replace(con: duckdb.DuckDBPyConnection) -> int:
            con.execute(sql.DELETE_GROUP, [group.name])
            con.execute(sql.INSERT_GROUP, [group.name, group.filter, group.created_ns])
            return 1

        self._table.change(replace)

    def delete_group(self, name: str) -> bool:
        def delete(con: duckdb.DuckDBPyConnection) -> int:
            (count,) = con.execute(sql.COUNT_GROUP, [name]).fetchall()[0]
            con.execute(sql.DELETE_GROUP, [name])
            return int(count)

        return self._table.change(delete) > 0


def _group(row: tuple[object, ...]) -> Group:
    name, text, created_ns = row
    return Group(str(name), str(text), int(str(created_ns)))
