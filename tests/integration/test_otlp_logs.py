"""Log records beside traces in a real daemon: Python's logging through the stock OpenTelemetry
SDK and its OTLP log exporters (HTTP and gRPC), read back under their spans, found by
`log CONTAINS`, and every bad request or parameter answered with its reason."""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Iterator

import grpc
import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from tests.integration.daemon import Daemon

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


@pytest.fixture
def python_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"fluoro-test-{time.monotonic_ns()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.handlers.clear()


def log_in_a_span(
    logger: logging.Logger, exporters: tuple[LogRecordExporter, SpanExporter], service: str, words: str
) -> tuple[str, str]:
    """A span in which Python's logging writes two records through the SDK; (trace id, span id)."""
    resource = Resource.create({"service.name": service})
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporters[0]))
    logger.addHandler(LoggingHandler(logger_provider=logs, log_code_attributes=True))
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(SimpleSpanProcessor(exporters[1]))
    with tracing.get_tracer("logs-test").start_as_current_span("charge") as span:
        logger.info("charging %s", words)
        logger.error("card declined for %s", words)
        context = span.get_span_context()
    logs.shutdown()
    tracing.shutdown()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def logs_of(daemon: Daemon, trace_id: str, records: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        response = daemon.get(f"/api/traces/{trace_id}/logs")
        found: list[dict[str, object]] = response.json()["logs"] if response.status_code == 200 else []
        if len(found) >= records or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_python_logging_through_the_stock_exporter_lands_under_its_span(
    daemon: Daemon, python_logger: logging.Logger, transport: str
) -> None:
    exporters: tuple[LogRecordExporter, SpanExporter] = (
        (
            HttpLogExporter(endpoint=daemon.traces_url.replace("/v1/traces", "/v1/logs")),
            HttpSpanExporter(daemon.traces_url),
        )
        if transport == "http"
        else (GrpcLogExporter(daemon.grpc_address, insecure=True), GrpcSpanExporter(daemon.grpc_address, insecure=True))
    )
    trace_id, span_id = log_in_a_span(python_logger, exporters, f"logs-{transport}", f"customer-{transport}")
    records = logs_of(daemon, trace_id, 2)
    assert [(r["span_id"], r["severity"], r["body"]) for r in records] == [
        (span_id, "INFO", f"charging customer-{transport}"),
        (span_id, "ERROR", f"card declined for customer-{transport}"),
    ]
    assert records[0]["service"] == f"logs-{transport}"
    assert records[1]["attributes"]["code.function.name"] == "log_in_a_span"  # type: ignore[index]
    daemon.wait_for_trace(trace_id, 1)
    expression = f'log CONTAINS "declined for customer-{transport}"'
    found = daemon.get("/api/traces", filter=expression, start=str(time.time() - 300)).json()
    assert [t["trace_id"] for t in found["traces"]] == [trace_id]


def test_a_trace_found_by_its_logs(daemon: Daemon) -> None:
    trace_id, now = "ab" * 16, time.time_ns()
    span = {"traceId": trace_id, "spanId": "cd" * 8, "name": "pay", "kind": 2, "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 10**6)}  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "payer"}}]}
    spans = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    record = {"timeUnixNano": str(now + 1000), "traceId": trace_id, "spanId": "cd" * 8,
              "body": {"stringValue": "refund issued to c9"}}  # fmt: skip
    logs = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]}
    json = {"Content-Type": "application/json"}
    assert httpx.post(daemon.traces_url, content=orjson.dumps(spans), headers=json).status_code == 200
    logs_url = daemon.traces_url.replace("/v1/traces", "/v1/logs")
    assert httpx.post(logs_url, content=orjson.dumps(logs), headers=json).json() == {}
    daemon.wait_for_trace(trace_id, 1)
    for expression, expected in (('log CONTAINS "refund issued"', [trace_id]), ('log = "refund"', [])):
        page = daemon.get("/api/traces", filter=expression, start=str(time.time() - 300)).json()
        assert [t["trace_id"] for t in page["traces"]] == expected


def test_bad_log_requests_are_answered_with_their_reason(daemon: Daemon) -> None:
    logs_url = daemon.traces_url.replace("/v1/traces", "/v1/logs")
    json = {"Content-Type": "application/json"}
    assert httpx.post(logs_url, content=b"{", headers=json).status_code == 400
    assert httpx.get(logs_url).status_code == 405
    good = {"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "ok"}}
    bad = {"timeUnixNano": str(time.time_ns()), "traceId": "xyz", "body": {"stringValue": "bad"}}
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [good, bad]}]}]}
    partial = httpx.post(logs_url, content=orjson.dumps(body), headers=json).json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == 1 and "traceId must be 32 hex characters" in partial["errorMessage"]
    bomb = gzip.compress(b" " * (25 * 1024 * 1024))
    assert httpx.post(logs_url, content=bomb, headers={**json, "Content-Encoding": "gzip"}).status_code == 413
    with grpc.insecure_channel(daemon.grpc_address) as channel:
        export: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(LOGS_EXPORT)
        with pytest.raises(grpc.RpcError) as raised:
            export(b"\xff\xff\xff", timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ExportLogsServiceResponse.FromString(export(b"", timeout=10)) == ExportLogsServiceResponse()
    metrics = daemon.get("/metrics").text
    assert 'fluoro_log_records_total{outcome="rejected",receiver="otlp_http"} 1.0' in metrics


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/traces/" + "00" * 16 + "/logs", 404),
        ("/api/traces/not-an-id/logs", 400),
        ("/api/traces/" + "ab" * 16 + "/logs?limit=0", 400),
        ("/api/traces/" + "ab" * 16 + "/logs?limit=5001", 400),
        ("/api/traces/" + "ab" * 16 + "/logs?limit=²", 400),
    ],
)
def test_bad_log_queries_get_a_4xx(daemon: Daemon, path: str, status: int) -> None:
    assert httpx.get(f"{daemon.api_url}{path}", timeout=10).status_code == status
