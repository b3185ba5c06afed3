"""The functions' OTLP relay (the ADOT extension's part): answers at once, forwards every body,
stays bounded, and the Lambda service span carries AWS's REPORT line."""

from __future__ import annotations

import gzip
import threading

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.cloud.lambdas.telemetry_relay import MAX_BODY_BYTES, RelayProcess, TelemetryRelay, serve
from demo_apps.local_collector import free_port
from demo_apps.otlp_sink import OtlpSink
from tests.integration.lambda_functions import config
from tests.waiting import wait_until


def export_request(name: str) -> bytes:
    """An OTLP protobuf request holding one span named `name` of service "relayed"."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "relayed"
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes(range(1, 17)), bytes(range(1, 9)), name
    span.start_time_unix_nano, span.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_000_100_000_000
    encoded: bytes = request.SerializeToString()
    return encoded


def test_the_relay_answers_at_once_and_forwards_each_body(sink: OtlpSink) -> None:
    relay = RelayProcess(sink.endpoint)
    try:
        protobuf = {"content-type": "application/x-protobuf"}
        answered = httpx.post(relay.traces_url, content=export_request("through the relay"), headers=protobuf)
        assert (answered.status_code, answered.content) == (200, b"")  # an empty ExportTraceServiceResponse
        zipped = httpx.post(
            relay.traces_url,
            content=gzip.compress(export_request("through the relay")),
            headers={**protobuf, "content-encoding": "gzip"},
        )
        assert zipped.status_code == 200
        as_json = httpx.post(relay.traces_url, content=b"{}", headers={"content-type": "application/json"})
        assert (as_json.status_code, as_json.json()) == (200, {})  # JSON answered in JSON
        spans = sink.wait_for(2, timeout_s=10)
        assert [s.name for s in spans] == ["through the relay", "through the relay"] and spans[0].service == "relayed"
        huge = httpx.post(
            relay.traces_url, content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413
    finally:
        relay.close()


def test_a_relay_whose_collector_is_gone_holds_a_bounded_backlog_then_refuses() -> None:
    relay = TelemetryRelay(f"http://127.0.0.1:{free_port()}/v1/traces", max_pending=2)
    server = serve(relay, 0)  # the kernel's free port, bound at once: no other test can take it first
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url, protobuf = f"http://127.0.0.1:{port}/v1/traces", {"content-type": "application/x-protobuf"}
        statuses = [httpx.post(url, content=b"\x0a\x00", headers=protobuf).status_code for _ in range(6)]
        assert statuses[:2] == [200, 200] and 503 in statuses  # the sender holds one, two wait, the rest refused
        refused = httpx.post(url, content=b"", headers=protobuf)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        wait_until(lambda: relay.dropped >= 1, timeout_s=15)  # five tries with backoff, then dropped, counted
    finally:
        server.shutdown()
        server.server_close()


def test_the_lambda_service_span_carries_the_report_line(service: LambdaService, sink: OtlpSink) -> None:
    service.deploy(config("reported", "slow", memory_mb=512, timeout_s=10))
    service.invoke("reported", {"sleep_s": 0.05})
    service.invoke("reported", {"sleep_s": 0.05})
    service.close()

    def reports() -> list[dict[str, object]]:
        found = [
            s.attributes
            for s in sink.wait_for(0, 0)
            if s.attributes.get("fluoro.origin") == "AWS::Lambda" and s.name == "reported"
        ]
        return found if len(found) == 2 else []

    cold, warm = sorted(wait_until(reports, 10), key=lambda a: "fluoro.lambda.init_duration_ms" not in a)
    for report in (cold, warm):
        duration = float(report["fluoro.lambda.duration_ms"])  # type: ignore[arg-type]
        assert 50 <= duration < 1000 and report["fluoro.lambda.billed_duration_ms"] == max(1, -(-duration // 1))
        assert report["fluoro.lambda.memory_size_mb"] == 512 and int(report["fluoro.lambda.max_memory_used_mb"]) > 10  # type: ignore[call-overload]
    assert float(cold["fluoro.lambda.init_duration_ms"]) >= 200  # type: ignore[arg-type]  # the init's 0.2 s sleep
    assert "fluoro.lambda.init_duration_ms" not in warm
