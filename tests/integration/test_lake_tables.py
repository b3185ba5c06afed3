"""A lake made by an earlier Fluoro: a collector that opens it adds the tables a later one needs."""

from __future__ import annotations

from pathlib import Path

from collector.storage.duckdb_store import DuckDBStore
from collector.storage.lake_location import LakeLocation
from collector.storage.protocols import Group, Statement, TimeWindow
from tests.contract.test_store_contract import SECOND, T0, batch
from tests.factories import at as span
from tests.postgres_cluster import PostgresCluster


def test_a_lake_from_before_group_rollups_gets_their_tables_when_a_collector_opens_it(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    first = DuckDBStore("", location)
    for table in ("group_throttle_minutes", "rollup_dirty"):  # as a lake made by an older Fluoro
        first.reader.rows(Statement(f"DROP TABLE {table}"))
    first.close()
    reader = DuckDBStore("", location, read_only=True)  # a reader changes nothing
    reader.close()
    writer = DuckDBStore("", location)
    try:
        assert writer.reader.rows(Statement("SELECT count(*) FROM rollup_dirty")) == [(0,)]
        writer.write([batch(span(1, 10, None, 1))])
        writer.link_new_spans()
        writer.roll_up_calls(T0 + 3600 * SECOND)
    finally:
        writer.close()


def test_a_lake_from_before_groups_gets_its_table_at_the_first_save(postgres: PostgresCluster, tmp_path: Path) -> None:
    store = DuckDBStore("", LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data")))
    try:
        store.reader.rows(Statement("DROP TABLE trace_groups"))  # as a lake made by an older Fluoro
        assert store.groups.groups() == [] and store.groups.group("g") is None
        store.groups.save_group(Group("g", "fault", 1))
        assert store.groups.groups() == [Group("g", "fault", 1)]
    finally:
        store.close()


def test_a_lake_from_before_trace_parts_gets_them_with_its_stored_traces_summarised(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    first = DuckDBStore("", location)
    first.write([batch(span(1, 10, None, 1, service="api"), span(1, 11, 10, 1.5, service="db", fault=True))])
    first.reader.rows(Statement("DROP TABLE trace_parts"))  # as a lake made by an older Fluoro
    first.close()
    writer = DuckDBStore("", location)
    try:
        window = TimeWindow(T0, T0 + 3600 * SECOND)
        (found,) = writer.reader.search_traces(window, None, 10)
        assert (found.span_count, found.services, found.fault) == (2, ("api", "db"), True)
        writer.write([batch(span(1, 12, 10, 2, service="queue"))])  # a later write adds a part
        (again,) = writer.reader.search_traces(window, None, 10)
        assert (again.span_count, again.services) == (3, ("api", "db", "queue"))
    finally:
        writer.close()
