"""DuckDB's memory bound (collector/storage/duckdb_memory.py): applied as told, refused outside
its range before anything is opened, and a statement that needs more spills instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.engine import Collector, CollectorSettings
from collector.storage.duckdb_memory import MAX_MEMORY_LIMIT_MIB, MIN_MEMORY_LIMIT_MIB
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement, StoreUnavailable

MIB = 1024 * 1024


def _limit_bytes(store: DuckDBStore) -> int:
    (row,) = store.reader.rows(Statement("SELECT current_setting('memory_limit')"))
    # DuckDB shows it rounded to one decimal of the largest unit (1000 or 1024 based by suffix).
    number, unit = str(row[0]).split()
    return int(float(number) * {"MiB": MIB, "GiB": 1024 * MIB, "MB": 10**6, "GB": 10**9}[unit])


def test_a_store_bounds_duckdbs_memory_as_told(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "bounded.duckdb"), memory_limit_mib=384)
    try:
        assert _limit_bytes(store) == 384 * MIB
    finally:
        store.close()


def test_without_a_bound_duckdb_keeps_its_own(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "unbounded.duckdb"))
    try:
        assert _limit_bytes(store) != 384 * MIB  # DuckDB's default: 80% of the machine
    finally:
        store.close()


def test_the_collector_passes_its_bound_to_the_store(tmp_path: Path) -> None:
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "c.duckdb"), memory_limit_mib=512))
    try:
        assert _limit_bytes(collector.store) == 512 * MIB
    finally:
        collector.stop()


@pytest.mark.parametrize("mib", [0, -1, MIN_MEMORY_LIMIT_MIB - 1, MAX_MEMORY_LIMIT_MIB + 1])
def test_a_bound_outside_its_range_is_refused_before_the_file_is_opened(tmp_path: Path, mib: int) -> None:
    path = tmp_path / "never.duckdb"
    with pytest.raises(StoreUnavailable, match=f"a memory limit of {mib} MiB is outside"):
        DuckDBStore(str(path), memory_limit_mib=mib)
    assert not path.exists()


def test_a_statement_needing_more_than_the_bound_spills_to_disk_rather_than_failing(tmp_path: Path) -> None:
    """The store forbids external access (files, URLs): its own spill files must still work."""
    store = DuckDBStore(str(tmp_path / "spill.duckdb"), memory_limit_mib=MIN_MEMORY_LIMIT_MIB)
    try:
        # A sort of ~400 MiB of rows (12M of two 16-byte values) cannot be held in 256 MiB.
        sorted_rows = Statement(
            "SELECT count(*), count(DISTINCT a) FROM (SELECT gen_random_uuid() a, gen_random_uuid() b "
            "FROM range(12000000) ORDER BY a)"
        )
        assert store.reader.rows(sorted_rows) == [(12_000_000, 12_000_000)]
    finally:
        store.close()
