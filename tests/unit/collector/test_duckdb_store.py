"""The DuckDB file's own machinery: reopening, schema migration, compression, locks, isolation.

What every backend must do is the contract suite's (tests/contract/test_store_contract.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from collector.storage import duckdb_sql
from collector.storage.duckdb_store import DuckDBStore, StoreLocked
from collector.storage.protocols import Statement, StoreUnavailable, TimeWindow
from tests.contract.test_store_contract import SECOND, T0, batch, trace_bytes
from tests.factories import at as span


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    instance = DuckDBStore(str(tmp_path / "spans.duckdb"))
    yield instance
    instance.close()


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


def test_schema_version_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "v.duckdb")
    first = DuckDBStore(path)
    first.write([batch(span(9, 90, None, 0))])
    version = first.schema_version
    first.close()
    again = DuckDBStore(path)
    assert again.schema_version == version == duckdb_sql.MIGRATIONS[-1][0]
    assert len(again.reader.trace_spans(trace_bytes(9))) == 1
    again.close()


def test_an_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    # A file as the first Fluoro left it: schema version 1, the resource's JSON on every span.
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute(duckdb_sql.CREATE_VERSION_TABLE)
    for statement in duckdb_sql.MIGRATIONS[0][1]:
        con.execute(statement)
    con.execute(duckdb_sql.WRITE_VERSION, [1])
    old = span(9, 90, None, 0, resource='{"service.name":"old"}')[:-1]  # no sampling weight yet
    con.execute(f"INSERT INTO spans VALUES ({', '.join('?' * len(old))})", [uuid.UUID(bytes=old[0]), *old[1:]])
    con.close()
    again = DuckDBStore(path)
    assert again.schema_version == duckdb_sql.MIGRATIONS[-1][0]
    (migrated,) = again.reader.trace_spans(trace_bytes(9))
    assert migrated.resource == {"service.name": "old"}
    (summary,) = again.reader.search_traces(TimeWindow(T0 - SECOND, T0 + SECOND), None, 10)  # its part made
    assert (summary.trace_id, summary.span_count) == (f"{9:032x}", 1)
    again.write([batch(span(10, 100, None, 1, resource='{"service.name":"new"}'))])  # and the new tables work
    assert again.reader.trace_spans(trace_bytes(10))[0].resource == {"service.name": "new"}
    again.close()


def test_a_trace_without_parts_is_still_read_whole(tmp_path: Path) -> None:
    # As a lake's spans that a Fluoro from before trace parts wrote: found by their trace id alone.
    store = DuckDBStore(str(tmp_path / "no-parts.duckdb"))
    store.write([batch(span(3, 30, None, 0), span(3, 31, 30, 900), annotations=((3, 31, "k", 1),))])
    store.reader.rows(Statement("DELETE FROM trace_parts"))
    spans = store.reader.trace_spans(trace_bytes(3))
    store.close()
    assert [(s.span_id, s.annotations) for s in spans] == [(f"{30:016x}", {}), (f"{31:016x}", {"k": 1.0})]


def test_trace_ids_are_kept_run_length_encoded(tmp_path: Path) -> None:
    # Ids that share their leading bytes (X-Ray's start second; here small numbers), one span a
    # trace: DuckDB's own pick bit-packs them, and a 128-bit value then decodes ~5x slower.
    path = str(tmp_path / "ids.duckdb")
    store = DuckDBStore(path)
    traces = range(1, 3000)
    store.write(
        [
            batch(
                *(span(i, i, None, i / 100) for i in traces),
                annotations=tuple((i, i, "customer", f"c{i % 7}") for i in traces),
                links=tuple((i, i, i + 1, i + 1) for i in traces),
            )
        ]
    )
    store.close()
    con = duckdb.connect(path, read_only=True)
    found = con.execute(
        "SELECT 'spans', list(DISTINCT compression) FROM pragma_storage_info('spans')"
        " WHERE column_name = 'trace_id' AND segment_type = 'UUID'"
        " UNION ALL SELECT 'annotations', list(DISTINCT compression) FROM pragma_storage_info('annotations')"
        " WHERE column_name = 'trace_id' AND segment_type = 'UUID'"
        " UNION ALL SELECT 'span_links', list(DISTINCT compression) FROM pragma_storage_info('span_links')"
        " WHERE column_name LIKE '%trace_id' AND segment_type = 'UUID'"
        " UNION ALL SELECT 'trace_parts', list(DISTINCT compression) FROM pragma_storage_info('trace_parts')"
        " WHERE column_name = 'trace_id' AND segment_type = 'UUID'"
    ).fetchall()
    con.close()
    assert dict(found) == {"spans": ["RLE"], "annotations": ["RLE"], "span_links": ["RLE"], "trace_parts": ["RLE"]}


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


def test_each_resource_is_stored_once_and_goes_with_its_last_span(store: DuckDBStore) -> None:
    shared, other = '{"service.name":"a","host":"h1"}', '{"service.name":"b"}'
    store.write([batch(span(1, 10, None, 0, resource=shared), span(1, 11, 10, 1, resource=shared))])
    store.write([batch(span(2, 20, None, 100, resource=shared), span(3, 30, None, 200, resource=other))])
    assert store.reader.rows(Statement("SELECT count(*) FROM resources", ())) == [(2,)]
    assert [s.resource for s in store.reader.trace_spans(trace_bytes(1))] == [{"service.name": "a", "host": "h1"}] * 2
    assert store.reader.trace_spans(trace_bytes(3))[0].resource == {"service.name": "b"}
    store.delete_older_than(T0 + 150 * SECOND)  # trace 3 alone is left: `shared` has no span any more
    assert store.reader.rows(Statement("SELECT resource FROM resources", ())) == [(other,)]
    store.write([batch(span(4, 40, None, 300, resource=shared))])  # and comes back when used again
    assert store.reader.trace_spans(trace_bytes(4))[0].resource == {"service.name": "a", "host": "h1"}


def test_queries_cannot_reach_outside_the_file(store: DuckDBStore) -> None:
    with pytest.raises(Exception, match=r"(?i)permission|disabled"):
        store.reader.rows(Statement("SELECT * FROM read_csv('/etc/passwd')"))


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
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()


def test_children_waiting_in_an_older_pending_table_keep_waiting_after_the_migration(tmp_path: Path) -> None:
    path = str(tmp_path / "pending.duckdb")
    DuckDBStore(path).close()
    con = duckdb.connect(path)  # back to schema version 5: pending without init durations
    con.execute("DROP TABLE pending")
    con.execute(
        """CREATE TABLE pending (trace_id UUID NOT NULL, span_id UBIGINT NOT NULL, parent_span_id UBIGINT,
        start_ns BIGINT NOT NULL, service VARCHAR NOT NULL, origin VARCHAR, duration_ns BIGINT NOT NULL,
        error BOOLEAN NOT NULL, fault BOOLEAN NOT NULL, throttle BOOLEAN NOT NULL, cold_start BOOLEAN NOT NULL,
        function_version VARCHAR, linked BOOLEAN NOT NULL, want_trace_id UUID NOT NULL,
        want_span_id UBIGINT NOT NULL, relation VARCHAR NOT NULL, since_ns BIGINT NOT NULL)"""
    )
    waiting = uuid.UUID(bytes=trace_bytes(5))
    con.execute(
        "INSERT INTO pending VALUES "
        "(?, 2, 1, ?, 'b', NULL, 10, false, false, false, true, NULL, false, ?, 1, 'parent', ?)",
        [waiting, T0, waiting, T0],
    )
    con.execute("DELETE FROM schema_version")
    con.execute(duckdb_sql.WRITE_VERSION, [5])
    con.close()
    store = DuckDBStore(path)
    try:
        assert store.schema_version == max(version for version, _ in duckdb_sql.MIGRATIONS)
        rows = store.reader.rows(Statement("SELECT service, cold_start, init_ns, relation FROM pending"))
        assert rows == [("b", True, None, "parent")]
        store.write([batch(span(5, 1, None, 0, service="a"))])  # its parent comes: the child stops waiting
        store.link_new_spans(T0 + SECOND)
        assert store.reader.rows(Statement("SELECT count(*) FROM pending")) == [(0,)]
    finally:
        store.close()


def test_closing_interrupts_a_read_still_running(tmp_path: Path) -> None:
    """DuckDB's close waits for every cursor's statement: a slow read (an insight query, a
    search at shutdown) would otherwise hold the daemon's stop for as long as it runs."""
    store = DuckDBStore(str(tmp_path / "closing.duckdb"))
    outcome: list[str] = []

    def read() -> None:
        endless = "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE (a.range + b.range) % 7 = 3"
        try:
            store.reader.rows(Statement(endless))
            outcome.append("finished")
        except StoreUnavailable as exc:
            outcome.append(str(exc))

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    time.sleep(1.0)  # the read is under way
    closing = threading.Thread(target=store.close, daemon=True)
    closing.start()
    closing.join(30)
    reading.join(30)
    assert not closing.is_alive(), "close waited for the read"
    assert len(outcome) == 1 and "Interrupted" in outcome[0]
