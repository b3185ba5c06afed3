"""Fixtures of the collector's unit tests: a DuckDB store, the ingest pipeline's log and manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage.duckdb_store import DuckDBStore
from tests.clocks import ManualClock
from tests.unit.collector.pipeline_support import RecordingLog


@pytest.fixture
def log(tmp_path: Path) -> Iterator[RecordingLog]:
    opened = RecordingLog(str(tmp_path / "spans.ingest"))
    yield opened
    opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    """A DuckDB store on a file of the test's own (tests that need another define their own)."""
    instance = DuckDBStore(str(tmp_path / "map.duckdb"))
    yield instance
    instance.close()
