"""--lake and --lake-data read into a LakeLocation: good URLs, bad ones refused with a reason,
and values quoted for libpq and SQL whatever they hold."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.storage.duckdb_store import DuckDBStore
from collector.storage.lake_location import (
    BadLakeLocation,
    LakeLocation,
    _libpq_quote,
    _sql_string,
    connect,
    redacted,
)
from collector.storage.protocols import StoreUnavailable
from demo_apps.local_collector import free_port
from tests.contract.test_store_contract import SECOND, T0, batch
from tests.factories import at as span
from tests.postgres_cluster import PostgresCluster


def test_a_postgresql_url_names_the_catalog() -> None:
    lake = LakeLocation.parse("postgresql://fluoro:s%40cret@db.internal:6432/traces", "s3://bucket/spans")
    assert (lake.user, lake.password, lake.host, lake.port, lake.database) == (
        "fluoro",
        "s@cret",
        "db.internal",
        6432,
        "traces",
    )
    assert lake.libpq() == "dbname='traces' host='db.internal' port='6432' user='fluoro'"  # no password
    assert "s@cret" not in lake.describe()


def test_defaults_port_and_user() -> None:
    lake = LakeLocation.parse("postgres://db/traces", "/data/lake")
    assert (lake.user, lake.port, lake.password) == ("postgres", 5432, None)


@pytest.mark.parametrize(
    ("url", "data", "reason"),
    [
        ("mysql://db/traces", "/d", "must be a postgresql:// URL"),
        ("postgresql://db", "/d", "needs a host and a database"),
        ("postgresql:///traces", "/d", "needs a host and a database"),
        ("postgresql://db/a/b", "/d", "needs a host and a database"),
        ("postgresql://db:99999/traces", "/d", "bad port"),
        ("postgresql://db:port/traces", "/d", "bad port"),
        ("postgresql://db/traces", "", "needs --lake-data"),
        ("postgresql://[db/traces", "/d", "not a URL"),
    ],
)
def test_bad_locations_say_what_is_wrong(url: str, data: str, reason: str) -> None:
    with pytest.raises(BadLakeLocation, match=reason):
        LakeLocation.parse(url, data)


@given(st.text(), st.text())
def test_any_text_is_a_location_or_a_bad_location(url: str, data: str) -> None:
    with contextlib.suppress(BadLakeLocation):
        LakeLocation.parse(url, data)


@given(st.text())
def test_quoted_values_cannot_end_their_quotes(value: str) -> None:
    quoted = _libpq_quote(value)
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == "'"
    # libpq: a quote inside is escaped by a backslash, and so is a backslash.
    assert inner.replace("\\\\", "").replace("\\'", "").count("'") == 0
    sql = _sql_string(value)
    assert sql[1:-1].replace("''", "").count("'") == 0


def test_an_unreachable_catalog_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nobody listens there
    lake = LakeLocation.parse(f"postgresql://fluoro:hunter2@127.0.0.1:{port}/traces", str(tmp_path))
    with pytest.raises(StoreUnavailable) as raised:
        connect(lake)
    assert "cannot open the lake postgresql://fluoro@127.0.0.1" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_redaction_hides_every_secret_given() -> None:
    assert redacted("password='hunter2' key=abc", ("hunter2", None, "abc")) == "password='***' key=***"


@pytest.fixture(scope="module")
def guarded() -> Iterator[PostgresCluster]:
    """A cluster that checks its superuser's password."""
    cluster = PostgresCluster(password="hunter2").start()
    yield cluster
    cluster.stop()


def test_a_password_reaches_the_catalog_and_no_error_quotes_it(guarded: PostgresCluster, tmp_path: Path) -> None:
    lake = LakeLocation.parse(guarded.new_database(), str(tmp_path / "data"))
    store = DuckDBStore("", lake)  # tables made under the advisory lock, the leader lock taken
    try:
        store.write([batch(span(1, 10, None, 1))])
        assert store.link_new_spans(T0 + 3600 * SECOND) == 1
    finally:
        store.close()
    wrong = LakeLocation.parse(guarded.url(lake.database, password="wrong-secret"), str(tmp_path / "data"))
    with pytest.raises(StoreUnavailable) as raised:
        DuckDBStore("", wrong)
    assert "password authentication failed" in str(raised.value)
    assert "wrong-secret" not in str(raised.value) and "hunter2" not in str(raised.value)
