"""The real daemon as a subprocess: every receiver, bad input, auth, crash safety and shutdown."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tests.integration.daemon import FLUORO, ROOT, Daemon
from tests.waiting import wait_until
from tracer.otlp_encoder import OtlpEncoder

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def otel_spans(service: str, count: int = 3) -> tuple[str, bytes]:
    """Spans from the stock SDK, encoded as OTLP protobuf; returns (trace id, body)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        for i in range(count - 1):
            with tracer.start_as_current_span(f"child-{i}"):
                pass
    spans = list(exporter.get_finished_spans())
    return f"{root.get_span_context().trace_id:032x}", OtlpEncoder().encode(spans)


def post(daemon: Daemon, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(daemon.traces_url, content=body, headers={**daemon.headers, **headers}, timeout=30)


def test_stock_otlp_exporter(daemon: Daemon) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "stock-sdk"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=daemon.traces_url)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.response.status_code", 502)
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.system", "postgresql")
    provider.shutdown()
    spans = daemon.wait_for_trace(f"{root.get_span_context().trace_id:032x}", 2)
    by_name = {s["name"]: s for s in spans}
    assert by_name["checkout"]["fault"] is True and by_name["checkout"]["service"] == "stock-sdk"
    assert by_name["db"]["target"] == {"type": "database", "name": "postgresql"}
    listed = daemon.get("/api/traces", filter='service("stock-sdk")').json()["traces"]
    assert [t["trace_id"] for t in listed] == [f"{root.get_span_context().trace_id:032x}"]


def test_json_by_hand_with_uppercase_ids_and_numeric_int64(daemon: Daemon) -> None:
    now = time.time_ns()
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hand-json"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5759E988BD862E3FE1BE46A994272793",
                                "spanId": "53995C3F42CD8AD8",
                                "name": "GET /x",
                                "kind": 2,
                                "startTimeUnixNano": now,
                                "endTimeUnixNano": now + 5_000_000,
                                "attributes": [{"key": "http.response.status_code", "value": {"intValue": 429}}],
                                "status": {"code": 0},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = post(daemon, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    (stored,) = daemon.trace("1-5759e988-bd862e3fe1be46a994272793")
    assert (stored["throttle"], stored["error"], stored["duration_ms"]) == (True, True, 5.0)


def test_gzip_protobuf(daemon: Daemon) -> None:
    trace_id, body = otel_spans("gzipped", 4)
    response = post(daemon, gzip.compress(body), {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse.FromString(response.content)
    assert len(daemon.trace(trace_id)) == 4


def test_aws_xray_sdk_over_udp(daemon: Daemon) -> None:
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    recorder = AWSXRayRecorder()
    recorder.configure(daemon_address=f"127.0.0.1:{daemon.xray_port}", sampling=False, context_missing="LOG_ERROR")
    segment = recorder.begin_segment("legacy-xray")
    segment.put_annotation("customer", "c9")
    segment.put_http_meta("status", 503)
    with recorder.in_subsegment("load") as sub:
        sub.put_annotation("rows", 3)
        with recorder.in_subsegment("inner"):
            pass
    segment.add_fault_flag()
    recorder.end_segment()
    recorder.emitter._socket.close()  # sent; the SDK itself never closes its socket
    trace_id = segment.trace_id
    spans = daemon.wait_for_trace(trace_id, 3)
    by_name = {s["name"]: s for s in spans}
    assert by_name["legacy-xray"]["service"] == "legacy-xray"
    http = by_name["legacy-xray"]["http"]
    assert isinstance(http, dict) and http["status"] == 503
    assert by_name["legacy-xray"]["fault"] is True
    assert by_name["legacy-xray"]["annotations"] == {"customer": "c9"}
    assert by_name["inner"]["parent_span_id"] == by_name["load"]["span_id"]
    assert by_name["load"]["service"] == "legacy-xray"


def test_bad_datagrams_are_counted_and_dropped(daemon: Daemon) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for payload in (b"junk", b'{"format":"json"}\n{"broken', b'{"format":"json","version":1}\n[]'):
            sock.sendto(payload, ("127.0.0.1", daemon.xray_port))
    wait_until(lambda: "fluoro_xray_bad_datagrams_total 3.0" in daemon.get("/metrics").text, timeout_s=5, poll_s=0.1)


def gzip_bomb(decompressed_bytes: int) -> bytes:
    return gzip.compress(b"\0" * decompressed_bytes, compresslevel=9)


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "reason"),
    [
        ("garbage", b"\xff\x01 not protobuf", PROTOBUF, 400, "protobuf"),
        ("truncated", None, PROTOBUF, 400, "protobuf"),
        ("not gzip", b"plain", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "gzip"),
        ("huge", b"\0" * (21 * 1024 * 1024), PROTOBUF, 413, "exceeds"),
        ("bomb", gzip_bomb(64 * 1024 * 1024), {**PROTOBUF, "Content-Encoding": "gzip"}, 413, "decompressed"),
        ("wrong type", b"<xml/>", {"Content-Type": "text/xml"}, 415, "unsupported content type"),
        ("wrong encoding", b"x", {**PROTOBUF, "Content-Encoding": "br"}, 415, "encoding"),
        ("bad json", b"{oops", {"Content-Type": "application/json"}, 400, "JSON"),
    ],
)
def test_bad_requests_get_their_status_and_store_nothing(
    daemon: Daemon, name: str, body: bytes | None, headers: dict[str, str], status: int, reason: str
) -> None:
    if body is None:
        _, full = otel_spans("truncated-victim")
        body = full[:-5]
    before = daemon.get("/api/services").json()["services"]
    response = post(daemon, body, headers)
    assert response.status_code == status
    text = response.text if "json" in response.headers.get("content-type", "") else response.content.decode("latin-1")
    assert reason in text
    assert daemon.get("/api/services").json()["services"] == before


def test_partly_invalid_batch_stores_the_valid_spans(daemon: Daemon) -> None:
    now = time.time_ns()
    good = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "ok",
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 1),
    }
    bad = {**good, "spanId": "0000000000000000", "name": "zero id"}
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [good, bad]}]}]}
    response = post(daemon, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == 1 and "span_id" in partial["errorMessage"]
    assert [s["name"] for s in daemon.trace("0af7651916cd43dd8448eb211c80319c")] == ["ok"]


def test_empty_request_and_protobuf_partial_success(daemon: Daemon) -> None:
    assert post(daemon, b"", PROTOBUF).status_code == 200
    response = post(daemon, b"", {"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (200, {})


def test_query_errors(daemon: Daemon) -> None:
    assert daemon.get("/api/traces/not-an-id").status_code == 400
    assert daemon.get(f"/api/traces/{'ab' * 16}").status_code == 404
    assert daemon.get("/api/traces", start="yesterday").status_code == 400
    assert daemon.get("/api/traces", limit=0).status_code == 400
    assert daemon.get("/docs").status_code == 200
    health = daemon.get("/healthz").json()
    assert health["status"] == "ok"
    metrics = daemon.get("/metrics").text
    for name in (
        "fluoro_spans_received_total",
        "fluoro_spans_stored_total",
        "fluoro_queue_spans",
        "fluoro_batch_commit_seconds",
        "fluoro_db_file_bytes",
        "fluoro_spans_dropped_total",
        "process_cpu_seconds_total",
        'fluoro_thread_cpu_seconds_total{thread="fluoro-writer"}',
        'fluoro_thread_cpu_seconds_total{thread="fluoro-housekeeping"}',
    ):
        assert name in metrics


def test_token_guards_ingest_and_queries(tmp_path: Path) -> None:
    guarded = Daemon(tmp_path / "t.duckdb", token="s3cret").start()
    try:
        trace_id, body = otel_spans("guarded")
        assert httpx.post(guarded.traces_url, content=body, headers=PROTOBUF).status_code == 401
        assert httpx.get(f"{guarded.api_url}/api/services").status_code == 401
        assert httpx.get(f"{guarded.api_url}/healthz").status_code == 200
        assert post(guarded, body, PROTOBUF).status_code == 200
        assert len(guarded.trace(trace_id)) == 3
    finally:
        code, output = guarded.stop()
    assert code == 0
    assert "s3cret" not in output


def send_until_stopped(daemon: Daemon, acked: list[str], stop: threading.Event) -> None:
    """Send requests one after another; remember the traces the daemon acknowledged."""
    while not stop.is_set():
        trace_id, body = otel_spans("crash-test", 5)
        try:
            response = httpx.post(daemon.traces_url, content=body, headers=PROTOBUF, timeout=5)
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            acked.append(trace_id)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_acknowledged_span_is_lost(tmp_path: Path, sig: int) -> None:
    db = tmp_path / "crash.duckdb"
    first = Daemon(db).start()
    acked: list[str] = []
    stop = threading.Event()
    senders = [threading.Thread(target=send_until_stopped, args=(first, acked, stop)) for _ in range(3)]
    for sender in senders:
        sender.start()
    try:
        wait_until(lambda: len(acked) >= 40, timeout_s=20, poll_s=0.05)
    finally:
        code, output = first.stop(sig)
    stop.set()
    for sender in senders:
        sender.join(10)
    assert len(acked) >= 40
    if sig == signal.SIGTERM:
        assert code == 0 and "database closed" in output
    second = Daemon(db).start()
    try:
        missing = [t for t in acked if len(second.trace(t)) != 5]
        assert missing == []
    finally:
        second.stop()


def test_a_span_killed_before_it_reached_duckdb_is_replayed_from_the_ingest_log(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    first = Daemon(db).start()
    trace_id, body = otel_spans("replayed", count=4)
    assert post(first, body, PROTOBUF).status_code == 200
    first.stop(signal.SIGKILL)  # at once: the fold into DuckDB comes up to a second after the ack
    assert Path(f"{db}.ingest").stat().st_size > 0
    left = duckdb.connect(str(db), read_only=True)
    in_duckdb = left.execute("SELECT count(*) FROM spans").fetchone()
    left.close()
    assert in_duckdb == (0,)  # so what the restart finds can only have come from the log
    second = Daemon(db).start()
    try:
        assert len(second.trace(trace_id)) == 4
    finally:
        second.stop()
    assert Path(f"{db}.ingest").stat().st_size == 0


def test_busy_port_and_locked_database_are_one_line_errors(daemon: Daemon, tmp_path: Path) -> None:
    busy = subprocess.run(
        [*FLUORO, "serve", "--db", str(tmp_path / "other.duckdb"), "--otlp-port", str(daemon.otlp_port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert busy.returncode != 0
    assert busy.stderr.strip().splitlines() == [
        f"Error: cannot listen for OTLP/HTTP on 127.0.0.1:{daemon.otlp_port}: Address already in use"
    ]
    other = Daemon(daemon.db_path)
    locked = subprocess.run(other.args(), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert locked.returncode != 0
    assert locked.stderr.strip().splitlines()[-1] == f"Error: database {daemon.db_path} is in use by another process"
    assert "Traceback" not in locked.stderr
    bad_flag = subprocess.run([*FLUORO, "serve", "--retention", "forever"], capture_output=True, text=True, cwd=ROOT)
    assert bad_flag.returncode == 2 and "not a duration" in bad_flag.stderr
