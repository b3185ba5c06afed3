"""A small table beside the spans (groups, insights): read and changed in transactions of its own.

A file gets such a table from its migrations. A lake made before the table existed has none:
reads find nothing, and the first change creates it in its own transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from collector.storage.protocols import StoreUnavailable


class SideTable:
    def __init__(
        self, cursor: Callable[[], duckdb.DuckDBPyConnection], create: str, what: str, *, read_only: bool
    ) -> None:
        self._cursor, self._create, self._what, self._read_only = cursor, create, what, read_only

    def read(self, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._cursor().execute(statement, list(params)).fetchall()
        except duckdb.CatalogException:
            return []  # a lake from before the table: nothing saved yet
        except duckdb.Error as exc:
            raise StoreUnavailable(f"reading {self._what}: {exc}") from exc

    def change(self, work: Callable[[duckdb.DuckDBPyConnection], int]) -> int:
        """Run `work` in a transaction; its answer (how many rows it changed) comes back."""
        if self._read_only:
            raise StoreUnavailable(f"this store was opened read-only: {self._what} are changed through a collector")
        con = self._cursor()
        try:
            con.execute(self._create)
            con.execute("BEGIN")
            changed = work(con)
            con.execute("COMMIT")
            return changed
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise StoreUnavailable(f"changing {self._what}: {exc}") from exc
