"""The cursors reads are running on, so that closing the store can interrupt them.

DuckDB's close waits for every cursor's statement to end: a slow read (an insight query, a
search at shutdown) held a daemon's stop for as long as it ran, and a statement that never
finished held it for good (docs/ARCHITECTURE.md, *A map query that never finished*).
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import duckdb


class OpenReads:
    """Cursors handed to readers, held weakly (a finished read's cursor goes with its caller)."""

    def __init__(self) -> None:
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._lock = threading.Lock()  # reads add from many threads; interrupting lists them

    def add(self, cursor: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        with self._lock:
            self._cursors.add(cursor)
        return cursor

    def interrupt(self) -> None:
        """Interrupt whatever each cursor runs: its caller gets DuckDB's InterruptException."""
        with self._lock:
            cursors = list(self._cursors)
        for cursor in cursors:
            with contextlib.suppress(duckdb.Error):  # closed already, or nothing running
                cursor.interrupt()
