"""Reads that see every acknowledged span.

The pipeline acknowledges a batch once it is in the ingest log and folds the log into the
store a row group at a time (up to 30 s later); a reader that asked the store straight away could miss spans whose
requests were already answered. This one has the pipeline fold first (a no-op when nothing
waits), so a trace is there as soon as the request that sent it returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from collector.storage.protocols import ServiceCount, Statement, StatementReader, TimeWindow, TraceReader


class StoreReader(TraceReader, StatementReader, Protocol):
    """What the query layer reads from a store."""


class FreshReader:
    """A StoreReader over `reader`, calling `catch_up` before each read."""

    def __init__(self, reader: StoreReader, catch_up: Callable[[], None]) -> None:
        self._reader = reader
        self._catch_up = catch_up

    def services(self, window: TimeWindow) -> list[ServiceCount]:
        self._catch_up()
        return self._reader.services(window)

    def trace(self, trace_id: bytes) -> list[dict[str, Any]]:
        self._catch_up()
        return self._reader.trace(trace_id)

    def fetch(self, statement: Statement) -> list[tuple[Any, ...]]:
        self._catch_up()
        return self._reader.fetch(statement)
