"""Groups in the database beside the spans (a file's or a lake's trace_groups table).

A file gets the table from its migrations. A lake made before groups existed has none: reads
find no groups, and the first save creates the table in its own transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import duckdb

from collector.storage import groups_sql as sql
from collector.storage.protocols import Group, StoreUnavailable


class DuckDBGroups:
    """GroupStore over a connection's cursors."""

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection], *, read_only: bool = False) -> None:
        self._cursor = cursor
        self._read_only = read_only

    def groups(self) -> list[Group]:
        return [Group(*row) for row in self._read(sql.SELECT_GROUPS)]

    def group(self, name: str) -> Group | None:
        rows = self._read(sql.SELECT_GROUP, name)
        return Group(*rows[0]) if rows else None

    def save_group(self, group: Group) -> None:
        def replace(con: duckdb.DuckDBPyConnection) -> int:
            con.execute(sql.DELETE_GROUP, [group.name])
            con.execute(sql.INSERT_GROUP, [group.name, group.filter, group.created_ns])
            return 1

        self._write(replace)

    def delete_group(self, name: str) -> bool:
        def delete(con: duckdb.DuckDBPyConnection) -> int:
            (count,) = con.execute(sql.COUNT_GROUP, [name]).fetchall()[0]
            con.execute(sql.DELETE_GROUP, [name])
            return int(count)

        return self._write(delete) > 0

    def _read(self, statement: str, *params: object) -> list[tuple[str, str, int]]:
        try:
            rows = self._cursor().execute(statement, list(params)).fetchall()
        except duckdb.CatalogException:
            return []  # a lake from before groups: none saved yet
        except duckdb.Error as exc:
            raise StoreUnavailable(f"reading groups: {exc}") from exc
        return [(str(name), str(text), int(created)) for name, text, created in rows]

    def _write(self, change: Callable[[duckdb.DuckDBPyConnection], int]) -> int:
        if self._read_only:
            raise StoreUnavailable("this store was opened read-only: groups are changed through a collector")
        con = self._cursor()
        try:
            con.execute(sql.CREATE_GROUPS)
            con.execute("BEGIN")
            changed = change(con)
            con.execute("COMMIT")
            return changed
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise StoreUnavailable(f"changing groups: {exc}") from exc
