"""The storage contract: every store implementation must pass this suite.

Today there is one (DuckDB); a new backend adds its factory to STORES.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from collector.model import SpanBatch, SpanBatchBuilder, SpanRow
from collector.query.filter_parser import parse_filter
from collector.query.search import search_traces
from collector.storage import duckdb_sql
from collector.storage.duckdb_store import DuckDBStore, StoreLocked
from collector.storage.protocols import Statement, StoreUnavailable, TimeWindow
from tests.factories import at as span

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND
STORES: dict[str, Callable[[Path], Any]] = {"duckdb": lambda tmp: DuckDBStore(str(tmp / "spans.duckdb"))}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    instance = STORES[request.param](tmp_path)
    yield instance
    instance.close()


def trace_bytes(n: int) -> bytes:
    return n.to_bytes(16, "big")


def batch(
    *rows: SpanRow,
    annotations: tuple[tuple[int, int, str, object], ...] = (),
    links: tuple[tuple[int, int, int, int], ...] = (),
) -> SpanBatch:
    builder = SpanBatchBuilder()
    for row in rows:
        builder.add_span(row)
    for trace, span_id, key, value in annotations:
        builder.add_annotation(trace_bytes(trace), span_id, T0, key, value)
    for trace, span_id, linked_trace, linked_span in links:
        builder.add_link(trace_bytes(trace), span_id, T0, trace_bytes(linked_trace), linked_span)
    return builder.build()


WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 3600 * SECOND)


def test_write_then_read_a_trace(store: Any) -> None:
    stored = store.write(
        [
            batch(
                span(1, 10, None, 0, http_status=200),
                span(1, 11, 10, 0.1, service="db"),
                span(1, 12, 11, 0.2),
                annotations=((1, 11, "customer", "c1"), (1, 11, "amount", 5), (1, 11, "vip", True)),
                links=((1, 12, 9, 99),),
            )
        ]
    )
    assert stored == 3
    spans = store.trace(trace_bytes(1))
    assert [s["span_id"] for s in spans] == [f"{i:016x}" for i in (10, 11, 12)]
    by_id = {s["span_id"]: s for s in spans}
    assert by_id[f"{11:016x}"]["annotations"] == {"amount": 5.0, "customer": "c1", "vip": True}
    assert by_id[f"{12:016x}"]["links"] == [{"trace_id": f"{9:032x}", "span_id": f"{99:016x}"}]
    assert by_id[f"{11:016x}"]["parent_span_id"] == f"{10:016x}"
    assert store.trace(trace_bytes(404)) == []


def test_resent_spans_are_stored_once(store: Any) -> None:
    first = batch(span(2, 20, None, 1), span(2, 21, 20, 1.5), annotations=((2, 21, "k", "v"),))
    assert store.write([first]) == 2
    assert store.write([first, first]) == 0
    assert store.write([batch(span(2, 21, 20, 1.5), span(2, 22, 20, 1.6))]) == 1
    spans = store.trace(trace_bytes(2))
    assert len(spans) == 3
    assert spans[1]["annotations"] == {"k": "v"}


def test_a_resend_after_a_restart_is_still_found(tmp_path: Path) -> None:
    path = str(tmp_path / "r.duckdb")
    first = DuckDBStore(path)
    sent = batch(span(11, 110, None, 5), span(11, 111, 110, 6))
    assert first.write([sent]) == 2
    first.close()
    again = DuckDBStore(path)
    assert again.write([sent]) == 0
    assert again.write([batch(span(11, 112, 110, 7))]) == 1
    again.close()


def test_a_span_from_the_future_is_still_found_when_resent_after_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "f.duckdb")
    first = DuckDBStore(path)
    ahead = batch(span(12, 120, None, 0, start_ns=time.time_ns() + 3600 * SECOND))  # an hour ahead
    assert first.write([ahead]) == 1
    first.close()
    again = DuckDBStore(path)
    assert again.write([ahead]) == 0
    assert again.write([batch(span(13, 130, None, 0, start_ns=time.time_ns()))]) == 1
    again.close()


def test_one_span_id_in_two_traces_is_two_spans_and_a_repeat_within_a_write_is_one(store: Any) -> None:
    assert store.write([batch(span(3, 30, None, 1), span(4, 30, None, 1)), batch(span(5, 50, None, 2))]) == 3
    assert store.write([batch(span(6, 60, None, 3), span(7, 60, None, 3)), batch(span(6, 60, None, 3))]) == 2
    assert [len(store.trace(trace_bytes(t))) for t in (3, 4, 5, 6, 7)] == [1, 1, 1, 1, 1]


def test_an_in_progress_span_is_replaced_by_its_completion(store: Any) -> None:
    # Only the X-Ray daemon protocol sends in-progress segments.
    store.write([batch(span(3, 30, None, 2, in_progress=True, duration_ns=0, source="xray"))])
    store.write([batch(span(3, 30, None, 2, duration_ns=40_000_000, source="xray"))])
    (only,) = store.trace(trace_bytes(3))
    assert (only["in_progress"], only["duration_ms"]) == (False, 40.0)
    store.write([batch(span(3, 30, None, 2, in_progress=True, duration_ns=0, source="xray"))])  # a late copy
    (still,) = store.trace(trace_bytes(3))
    assert still["in_progress"] is False


def test_services_and_trace_search(store: Any) -> None:
    store.write(
        [
            batch(
                span(4, 40, None, 10, service="api", http_status=200),
                span(4, 41, 40, 10.1, service="ledger", fault=True),
                span(5, 50, None, 20, service="api", throttle=True, error=True, http_status=429),
                span(6, 60, None, 30, service="images", cold_start=True),
            )
        ]
    )
    services = {s.name: s.spans for s in store.services(WINDOW)}
    assert services == {"api": 2, "images": 1, "ledger": 1}
    found = search_traces(store, WINDOW, None, limit=10)
    assert [t.trace_id for t in found] == [f"{n:032x}" for n in (6, 5, 4)]  # newest first
    four = found[2]
    assert (four.root_service, four.span_count, four.services, four.fault) == ("api", 2, ("api", "ledger"), True)
    assert (found[1].throttle, found[1].http_status) == (True, 429)
    assert found[0].cold_start is True
    ledger = parse_filter('service("ledger")')
    assert [t.trace_id for t in search_traces(store, WINDOW, ledger, limit=10)] == [f"{4:032x}"]
    assert len(search_traces(store, WINDOW, None, limit=2)) == 2
    late = TimeWindow(T0 + 25 * SECOND, T0 + 3600 * SECOND)
    assert [t.trace_id for t in search_traces(store, late, None, limit=10)] == [f"{6:032x}"]


def test_retention_deletes_old_spans_and_their_rows(store: Any) -> None:
    store.write(
        [batch(span(7, 70, None, 0), span(8, 80, None, 100), annotations=((7, 70, "k", 1),), links=((7, 70, 8, 80),))]
    )
    assert store.delete_older_than(T0 + 50 * SECOND) == 1
    assert store.trace(trace_bytes(7)) == []
    assert len(store.trace(trace_bytes(8))) == 1


def test_schema_version_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "v.duckdb")
    first = DuckDBStore(path)
    first.write([batch(span(9, 90, None, 0))])
    version = first.schema_version
    first.close()
    again = DuckDBStore(path)
    assert again.schema_version == version == duckdb_sql.MIGRATIONS[-1][0]
    assert len(again.trace(trace_bytes(9))) == 1
    again.close()


def test_an_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    # A file as the first Fluoro left it: schema version 1, the resource's JSON on every span.
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute(duckdb_sql.CREATE_VERSION_TABLE)
    for statement in duckdb_sql.MIGRATIONS[0][1]:
        con.execute(statement)
    con.execute(duckdb_sql.WRITE_VERSION, [1])
    old = span(9, 90, None, 0, resource='{"service.name":"old"}')
    con.execute(f"INSERT INTO spans VALUES ({', '.join('?' * len(old))})", [uuid.UUID(bytes=old[0]), *old[1:]])
    con.close()
    again = DuckDBStore(path)
    assert again.schema_version == duckdb_sql.MIGRATIONS[-1][0]
    (migrated,) = again.trace(trace_bytes(9))
    assert migrated["resource"] == {"service.name": "old"}
    again.write([batch(span(10, 100, None, 1, resource='{"service.name":"new"}'))])  # and the new tables work
    assert again.trace(trace_bytes(10))[0]["resource"] == {"service.name": "new"}
    again.close()


def test_attributes_are_kept_zstd_compressed(tmp_path: Path) -> None:
    # DuckDB's own choice for the JSON text cost twice the checkpoint CPU and 2.7x the bytes.
    path = str(tmp_path / "z.duckdb")
    store = DuckDBStore(path)
    store.write([batch(*(span(i, i, None, i, attributes=f'{{"n": {i}}}') for i in range(1, 200)))])
    store.close()
    con = duckdb.connect(path, read_only=True)
    (compressions,) = con.execute(
        "SELECT list(DISTINCT compression) FROM pragma_storage_info('spans') "
        "WHERE column_name = 'attributes' AND segment_type = 'VARCHAR'"
    ).fetchall()[0]
    con.close()
    assert compressions == ["ZSTD"]


def test_each_resource_is_stored_once_and_goes_with_its_last_span(store: Any) -> None:
    shared, other = '{"service.name":"a","host":"h1"}', '{"service.name":"b"}'
    store.write([batch(span(1, 10, None, 0, resource=shared), span(1, 11, 10, 1, resource=shared))])
    store.write([batch(span(2, 20, None, 100, resource=shared), span(3, 30, None, 200, resource=other))])
    assert store.fetch(Statement("SELECT count(*) FROM resources", ())) == [(2,)]
    assert [s["resource"] for s in store.trace(trace_bytes(1))] == [{"service.name": "a", "host": "h1"}] * 2
    assert store.trace(trace_bytes(3))[0]["resource"] == {"service.name": "b"}
    store.delete_older_than(T0 + 150 * SECOND)  # trace 3 alone is left: `shared` has no span any more
    assert store.fetch(Statement("SELECT resource FROM resources", ())) == [(other,)]
    store.write([batch(span(4, 40, None, 300, resource=shared))])  # and comes back when used again
    assert store.trace(trace_bytes(4))[0]["resource"] == {"service.name": "a", "host": "h1"}


def test_queries_cannot_reach_outside_the_file(store: Any) -> None:
    with pytest.raises(Exception, match=r"(?i)permission|disabled"):
        store._cursor().execute("SELECT * FROM read_csv('/etc/passwd')").fetchall()


def test_a_file_held_by_another_process_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked, match="in use by another process"):
            DuckDBStore(str(path))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)


def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "c.duckdb"))
    store.close()
    with pytest.raises(StoreUnavailable):
        store.trace(uuid.uuid4().bytes)
