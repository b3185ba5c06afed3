"""The backends every contract test runs against (the `store` fixture)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.storage.duckdb_store import DuckDBStore
from collector.storage.lake_location import LakeLocation
from collector.storage.protocols import Store
from tests.postgres_cluster import PostgresCluster

BACKENDS: dict[str, Callable[[Path, Callable[[], PostgresCluster]], Store]] = {
    "duckdb-file": lambda tmp, _: DuckDBStore(str(tmp / "spans.duckdb")),
    "ducklake": lambda tmp, cluster: DuckDBStore(
        "", LakeLocation.parse(cluster().new_database(), str(tmp / "lake-data"))
    ),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    instance = BACKENDS[request.param](tmp_path, lambda: request.getfixturevalue("postgres"))
    yield instance
    instance.close()
