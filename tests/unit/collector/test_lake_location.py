"""--lake and --lake-data read into a LakeLocation: good URLs, bad ones refused with a reason,
and values quoted for libpq and SQL whatever they hold."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.storage.lake_location import BadLakeLocation, LakeLocation, _libpq_quote, _sql_string


def test_a_postgresql_url_names_the_catalog() -> None:
    lake = LakeLocation.parse("postgresql://fluoro:s%40cret@db.internal:6432/traces", "s3://bucket/spans")
    assert (lake.user, lake.password, lake.host, lake.port, lake.database) == (
        "fluoro",
        "s@cret",
        "db.internal",
        6432,
        "traces",
    )
    assert lake.libpq() == "dbname='traces' host='db.internal' port='6432' user='fluoro' password='s@cret'"
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
