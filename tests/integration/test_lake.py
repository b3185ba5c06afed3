"""Lake mode with real daemons: collectors writing one DuckLake (a throwaway PostgreSQL catalog,
Parquet in a folder), a read-only daemon beside them, crashes and a leader that dies."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, set_span_in_context

from collector.storage import lake_map
from collector.storage.duckdb_calls import link_calls
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.lake_location import LakeLocation, s3_secret
from collector.storage.lake_location import connect as connect_lake
from collector.storage.lake_map import LakeMapTables
from collector.storage.leader_lock import LeaderLock
from collector.storage.protocols import Group, Statement, StoreUnavailable, TimeWindow
from tests.contract.test_store_contract import SECOND, T0, batch, trace_bytes
from tests.factories import at as span
from tests.integration.daemon import Daemon
from tests.postgres_cluster import PostgresCluster
from tests.waiting import wait_until
from tracer.otlp_encoder import OtlpEncoder

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@dataclass
class Lake:
    url: str
    data: Path
    scratch: Path

    def collector(self, name: str, *extra: str) -> Daemon:
        """A collector daemon on the lake, with an ingest log of its own (not started)."""
        args = ("--lake", self.url, "--lake-data", str(self.data), "--ingest-log", str(self.scratch / f"{name}.ingest"))
        return Daemon(self.scratch / f"{name}.duckdb", extra_args=(*args, *extra))

    def reader(self) -> Daemon:
        return Daemon(
            self.scratch / "reader.duckdb",
            extra_args=("--lake", self.url, "--lake-data", str(self.data), "--read-only"),
        )


@pytest.fixture
def lake(postgres: PostgresCluster, tmp_path: Path) -> Lake:
    return Lake(postgres.new_database(), tmp_path / "lake-data", tmp_path)


@pytest.fixture
def running() -> Iterator[list[Daemon]]:
    """Daemons a test starts; each stopped at the end, cleanly unless the test killed it."""
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        if daemon.process is not None and daemon.process.poll() is None:
            code, output = daemon.stop()
            assert code == 0 and "Traceback" not in output, output


def start(running: list[Daemon], daemon: Daemon) -> Daemon:
    running.append(daemon)
    return daemon.start(timeout_s=60)


def api_call_to_ledger() -> tuple[str, list[ReadableSpan], list[ReadableSpan]]:
    """One trace over two services: (trace id, the api's spans, the ledger's spans)."""
    recorded = []
    providers = []
    for service in ("api", "ledger"):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
        recorded.append(exporter)
    api, ledger = (p.get_tracer("test") for p in providers)
    with (
        api.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as root,
        api.start_as_current_span("call ledger", kind=SpanKind.CLIENT) as call,
        ledger.start_as_current_span("POST /entries", kind=SpanKind.SERVER, context=set_span_in_context(call)),
    ):
        pass
    trace_id = f"{root.get_span_context().trace_id:032x}"
    return trace_id, list(recorded[0].get_finished_spans()), list(recorded[1].get_finished_spans())


def send(daemon: Daemon, spans: list[ReadableSpan]) -> None:
    response = httpx.post(daemon.traces_url, content=OtlpEncoder().encode(spans), headers=PROTOBUF, timeout=30)
    assert response.status_code == 200, response.text


def edges(daemon: Daemon) -> set[tuple[str, str]]:
    body = daemon.get("/api/service-map").json()
    names = {node["id"]: node["name"] for node in body["nodes"]}
    return {(names[e["source"]], names[e["target"]]) for e in body["edges"]}


def test_a_trace_split_over_two_collectors_is_whole_for_a_reader_and_on_the_map(
    lake: Lake, running: list[Daemon]
) -> None:
    first = start(running, lake.collector("first"))
    second = start(running, lake.collector("second"))
    reader = start(running, lake.reader())
    assert reader.get("/healthz").json()["read_only"] is True
    trace_id, api_spans, ledger_spans = api_call_to_ledger()
    send(first, api_spans)
    send(second, ledger_spans)
    assert len(reader.wait_for_trace(trace_id, 3, timeout_s=30)) == 3
    wait_until(lambda: ("api", "ledger") in edges(reader), timeout_s=30, describe=lambda: f"edges {edges(reader)}")
    assert edges(first) == edges(second) == edges(reader)
    # a log record sent to one collector is read from the lake by the reader, and searched
    record = {"timeUnixNano": str(time.time_ns()), "traceId": trace_id, "body": {"stringValue": "posted in the lake"}}
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    logs_url = second.traces_url.replace("/v1/traces", "/v1/logs")
    assert httpx.post(logs_url, json=logs, timeout=30).status_code == 200

    def logged() -> bool:
        return [r["body"] for r in reader.get(f"/api/traces/{trace_id}/logs").json()["logs"]] == ["posted in the lake"]

    wait_until(logged, timeout_s=30, describe=lambda: "the reader has not the record")
    found = reader.get("/api/traces", filter='log CONTAINS "in the lake"', start=str(time.time() - 600)).json()
    assert [t["trace_id"] for t in found["traces"]] == [trace_id]


def test_a_reader_takes_no_spans_and_needs_a_lake(lake: Lake, running: list[Daemon], tmp_path: Path) -> None:
    start(running, lake.collector("first"))  # creates the lake's tables
    reader = start(running, lake.reader())
    with pytest.raises(httpx.ConnectError):
        httpx.post(reader.traces_url, content=b"", headers=PROTOBUF, timeout=5)
    alone = Daemon(tmp_path / "alone.duckdb", extra_args=("--read-only",))
    result = subprocess.run(alone.args(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--read-only needs --lake" in result.stderr


def test_a_backlog_is_linked_over_several_runs(postgres: PostgresCluster, tmp_path: Path) -> None:
    # A leader taking over a long backlog reads it a bounded number of snapshots at a time.
    store = DuckDBStore("", LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data")))
    try:
        for n in range(1, lake_map.MAX_SNAPSHOTS_PER_RUN + 5):
            store.write([batch(span(n, 10, None, n))])
        first = store.link_new_spans(T0 + 3600 * SECOND)
        second = store.link_new_spans(T0 + 3600 * SECOND)
        total = lake_map.MAX_SNAPSHOTS_PER_RUN + 4
        assert 0 < first < total  # a write is one snapshot; so were the lake's creation and tables
        assert first + second == total
        assert store.link_new_spans(T0 + 3600 * SECOND) == 0
    finally:
        store.close()


def test_the_leader_links_its_own_commits_from_memory_and_others_from_the_feed(
    postgres: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    leader, other = DuckDBStore("", location), DuckDBStore("", location, leader=NeverLeads())
    fed: list[tuple[int, int]] = []
    read_feed = LakeMapTables._committed_between

    def feed(tables: LakeMapTables, since: int, upto: int) -> tuple[pa.Table, pa.Table]:
        fed.append((since, upto))
        return read_feed(tables, since, upto)

    monkeypatch.setattr(LakeMapTables, "_committed_between", feed)
    try:
        assert leader.link_new_spans(T0 + 3600 * SECOND) == 0  # takes the lock; the tables' snapshots
        fed.clear()
        leader.write([batch(span(1, 10, None, 1), span(1, 11, 10, 1.1, service="db"))])
        assert leader.link_new_spans(T0 + 3600 * SECOND) == 2
        assert fed == []  # its own commit, from memory
        other.write([batch(span(2, 20, None, 2), span(2, 21, 20, 2.1, service="db"))])
        leader.write([batch(span(3, 30, None, 3))])
        assert leader.link_new_spans(T0 + 3600 * SECOND) == 3
        assert len(fed) == 1  # another collector's commit in the range: the feed for all of it
        entries = leader.reader.rows(Statement("SELECT count(*) FROM calls WHERE role = 'entry'"))[0][0]
        assert entries == 5  # three roots and two calls into db, each once
    finally:
        other.close()
        leader.close()


class NeverLeads(LeaderLock):
    def __init__(self) -> None:
        super().__init__("")

    def held(self) -> bool:
        return False


def test_a_reader_on_a_lake_without_tables_says_so(postgres: PostgresCluster, tmp_path: Path) -> None:
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    with pytest.raises(StoreUnavailable, match="has no Fluoro tables yet: start a collector on it first"):
        DuckDBStore("", location, read_only=True)
    writer = DuckDBStore("", location)
    reader = DuckDBStore("", location, read_only=True)
    try:
        with pytest.raises(StoreUnavailable, match="read-only"):
            reader.write([batch(span(1, 10, None, 1))])
        assert isinstance(reader.map_tables, LakeMapTables) and not reader.map_tables.leading()
        with pytest.raises(StoreUnavailable, match="read-only"):
            reader.groups.save_group(Group("g", "fault", 1))
        writer.groups.save_group(Group("g", "fault", 1))
        assert reader.groups.groups() == [Group("g", "fault", 1)]  # every collector's, and its readers'
    finally:
        reader.close()
        writer.close()


def test_a_collector_killed_loses_nothing_it_acknowledged_and_another_takes_over_linking(
    lake: Lake, running: list[Daemon]
) -> None:
    first = start(running, lake.collector("first"))
    wait_until(lambda: first.get("/metrics").text.count("fluoro_lake_leader 1.0") == 1, timeout_s=30)
    second = start(running, lake.collector("second"))
    reader = start(running, lake.reader())
    sent = [api_call_to_ledger() for _ in range(20)]
    for _, api_spans, ledger_spans in sent:
        send(first, api_spans + ledger_spans)
    first.stop(signal.SIGKILL)  # the leader, with acknowledged spans maybe only in its ingest log
    restarted = start(running, lake.collector("first"))
    for trace_id, _, _ in sent:
        assert len(reader.wait_for_trace(trace_id, 3, timeout_s=30)) == 3
    # The second collector leads now (the first's lock went with its connection), or the
    # restarted one does: either way the map links the spans every collector wrote.
    trace_id, api_spans, ledger_spans = api_call_to_ledger()
    send(second, ledger_spans)
    send(restarted, api_spans)
    reader.wait_for_trace(trace_id, 3, timeout_s=30)
    wait_until(lambda: ("api", "ledger") in edges(reader), timeout_s=30, describe=lambda: f"edges {edges(reader)}")
    leaders = [d.get("/metrics").text.count("fluoro_lake_leader 1.0") for d in (second, restarted)]
    assert sorted(leaders) == [0, 1]


def test_upkeep_compacts_and_expires_and_linking_goes_on(postgres: PostgresCluster, tmp_path: Path) -> None:
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    store = DuckDBStore("", location)
    try:
        for n in range(1, 13):  # a trace a commit, as a quiet collector folds: inlined in the catalog
            store.write([batch(span(n, 10, None, n), span(n, 11, 10, n + 0.1, service="db"))])
            store.link_new_spans(T0 + 3600 * SECOND)
        for n in range(4):  # and busier folds: a Parquet file each
            store.write([batch(*(span(100 + n, 1000 + i, None, 30 + n) for i in range(200)))])
            store.link_new_spans(T0 + 3600 * SECOND)
        assert data_files(store) == 4
        assert store.file_size_bytes() > 4 * 200 * 10  # four files of 200 spans, whatever their encoding
        assert isinstance(store.map_tables, LakeMapTables)
        assert store.map_tables.upkeep(keep_s=0)
        assert data_files(store) == 1  # the inlined rows flushed, and every file merged into one
        oldest = store.reader.rows(Statement("SELECT min(snapshot_id) FROM lake.snapshots()"))[0][0]
        linked = store.reader.rows(Statement("SELECT linked_snapshot FROM link_state"))[0][0]
        assert oldest == linked  # every snapshot before the last one linked expired, none after
        store.write([batch(span(20, 10, None, 20), span(20, 11, 10, 20.1, service="db"))])
        store.link_new_spans(T0 + 3600 * SECOND)
        assert all(len(store.reader.trace_spans(trace_bytes(n))) == 2 for n in (*range(1, 13), 20))
        edges = store.reader.hop_rows(TimeWindow(T0, T0 + 60 * SECOND), None, 100)
        assert edges.counts
    finally:
        store.close()


def data_files(store: DuckDBStore) -> int:
    return int(store.reader.rows(Statement("SELECT count(*) FROM ducklake_list_files('lake', 'spans')"))[0][0])


def test_a_lake_on_s3_through_an_s3_compatible_endpoint(
    postgres: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's S3 on loopback stands in for S3; credentials and endpoint as the AWS CLI takes them.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # its own free port: no race
    server.start()
    port = server.get_host_and_port()[1]
    try:
        credentials = {"AWS_ACCESS_KEY_ID": "fluoro", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1"}
        for name, value in {**credentials, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        s3.create_bucket(Bucket="traces")
        store = DuckDBStore("", LakeLocation.parse(postgres.new_database(), "s3://traces/lake/"))
        try:
            store.write([batch(*(span(1, 10 + i, None if i == 0 else 10, 1 + i * 0.01) for i in range(50)))])
            store.link_new_spans(T0 + 3600 * SECOND)
            assert len(store.reader.trace_spans(trace_bytes(1))) == 50
        finally:
            store.close()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="traces").get("Contents", [])]
        assert any(k.startswith("lake/") and k.endswith(".parquet") for k in keys)
        s3.close()
    finally:
        server.stop()


def test_the_s3_secret_comes_from_the_aws_variables() -> None:
    secret = s3_secret(
        {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "it's",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_S3": "https://minio.internal:9000",
        }
    )
    assert "KEY_ID 'k'" in secret and "SECRET 'it''s'" in secret and "REGION 'eu-west-1'" in secret
    assert "ENDPOINT 'minio.internal:9000'" in secret and "USE_SSL true" in secret
    assert s3_secret({}) == "CREATE OR REPLACE SECRET fluoro_lake_s3 (TYPE s3)"  # DuckDB's defaults


def test_a_time_window_reads_only_the_files_of_its_time(postgres: PostgresCluster, tmp_path: Path) -> None:
    # Folds write consecutive spans, so each file covers its own stretch of time and its
    # statistics let a window skip the others.
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    store = DuckDBStore("", location)
    try:
        for hour in range(3):
            store.write([batch(*(span(10 + hour, 100 + i, None, hour * 3600 + i) for i in range(200)))])
    finally:
        store.close()
    reader = connect_lake(location)
    try:
        reader.execute("PRAGMA enable_profiling = 'json'")
        window = (T0 + 3600 * SECOND, T0 + 3700 * SECOND)
        (_, profile), *_ = reader.execute(
            "EXPLAIN ANALYZE SELECT count(*) FROM spans WHERE start_ns BETWEEN ? AND ?", window
        ).fetchall()
        assert reader.execute("SELECT count(*) FROM ducklake_list_files('lake', 'spans')").fetchall() == [(3,)]
    finally:
        reader.close()
    assert files_read(json.loads(profile)) == 1


def files_read(node: dict[str, Any]) -> int:
    if node.get("operator_name") == "DUCKLAKE_SCAN":
        return int(node["extra_info"]["Total Files Read"])
    return sum(files_read(child) for child in node.get("children", []))


class AlwaysLeads(LeaderLock):
    """A leader lock that never asks PostgreSQL: two of them stand for a lock that failed."""

    def __init__(self) -> None:
        super().__init__("")
        self._held = True

    def held(self) -> bool:
        return True


def test_two_leaders_at_once_cannot_both_link_the_same_snapshots(
    postgres: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The advisory lock makes one leader; if it ever made two (a partition, a stale
    # connection), link_state is updated in each link transaction, so DuckLake lets one commit.
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    writer = DuckDBStore("", location)
    stores = [DuckDBStore("", location, leader=AlwaysLeads()) for _ in range(2)]
    both_linked = threading.Barrier(2, timeout=30)

    def link_then_wait(*args: Any) -> None:
        link_calls(*args)
        both_linked.wait()  # both transactions hold their calls before either commits

    monkeypatch.setattr(lake_map, "link_calls", link_then_wait)
    outcomes: list[object] = []

    def run(store: DuckDBStore) -> None:
        try:
            outcomes.append(store.link_new_spans(T0 + 3600 * SECOND))
        except StoreUnavailable as exc:
            outcomes.append(exc)

    try:
        writer.write([batch(*(span(n, 10, None, n) for n in range(1, 31)))])
        threads = [threading.Thread(target=run, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(type(o).__name__ for o in outcomes) == ["StoreUnavailable", "int"]
        entries = writer.reader.rows(Statement("SELECT count(*) FROM calls WHERE role = 'entry'"))[0][0]
        assert entries == 30  # once each
    finally:
        for store in stores:
            store.close()
        writer.close()
