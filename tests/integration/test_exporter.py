"""The OTLP/HTTP exporter against a scripted HTTP server on a loopback port."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from demo_apps.otlp_sink import decode_request
from tests.conftest import make_recorder
from tracer.exporter import OtlpHttpSender
from tracer.runtime import Tracing
from tracer.sdk_exporters import OtlpHttpExporter
from tracer.settings import Settings


class Script:
    """Answers each POST with the next status in `statuses` (then 200), recording requests."""

    def __init__(self, statuses: list[tuple[int, dict[str, str]]]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes]] = []


@pytest.fixture
def server() -> Iterator[tuple[ThreadingHTTPServer, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            script.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status, headers = script.statuses.pop(0) if script.statuses else (200, {})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, script
    httpd.shutdown()
    httpd.server_close()


def endpoint(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1/traces"


def one_span() -> list[ReadableSpan]:
    tracing, exporter = make_recorder()
    span = tracing.spans.start("exported")
    span.end()
    return list(exporter.get_finished_spans())


def test_posts_protobuf_with_headers_and_gzip(server: tuple[ThreadingHTTPServer, Script]) -> None:
    httpd, script = server
    exporter = OtlpHttpExporter(endpoint(httpd), headers={"authorization": "Bearer t"}, compression="gzip")
    assert exporter.export(one_span()).name == "SUCCESS"
    exporter.shutdown()
    ((headers, body),) = script.requests
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "gzip"
    assert headers["authorization"] == "Bearer t"
    assert [s.name for s in decode_request(gzip.decompress(body))] == ["exported"]


def test_retries_retryable_statuses_honouring_retry_after(server: tuple[ThreadingHTTPServer, Script]) -> None:
    httpd, script = server
    script.statuses = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    exporter = OtlpHttpExporter(endpoint(httpd))
    assert exporter.export(one_span()).name == "SUCCESS"
    exporter.shutdown()
    assert len(script.requests) == 3


def test_gives_up_on_a_non_retryable_status(server: tuple[ThreadingHTTPServer, Script]) -> None:
    httpd, script = server
    script.statuses = [(400, {})]
    exporter = OtlpHttpExporter(endpoint(httpd))
    assert exporter.export(one_span()).name == "FAILURE"
    exporter.shutdown()
    assert len(script.requests) == 1


def test_unreachable_collector_fails_within_the_timeout() -> None:
    exporter = OtlpHttpExporter("http://127.0.0.1:9/v1/traces", timeout_s=0.5)
    assert exporter.export(one_span()).name == "FAILURE"


def test_rejects_a_non_http_endpoint() -> None:
    with pytest.raises(ValueError, match="http"):
        OtlpHttpExporter("grpc://127.0.0.1:4317")


def test_works_under_the_sdks_batch_processor(server: tuple[ThreadingHTTPServer, Script]) -> None:
    httpd, script = server
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpHttpExporter(endpoint(httpd))))
    provider.get_tracer("sdk").start_span("through the sdk").end()
    provider.shutdown()
    ((_, body),) = script.requests
    assert [s.name for s in decode_request(body)] == ["through the sdk"]


def test_the_pipelines_flush_says_whether_the_collector_took_the_spans(
    server: tuple[ThreadingHTTPServer, Script],
) -> None:
    httpd, script = server
    script.statuses = [(400, {})]
    tracing = Tracing(Settings(traces_endpoint=endpoint(httpd), batch_delay_ms=60_000))
    tracing.spans.start("refused").end()
    assert tracing.flush() is False
    tracing.spans.start("taken").end()
    assert tracing.flush() is True
    tracing.shutdown()
    assert [[s.name for s in decode_request(body)] for _, body in script.requests] == [["refused"], ["taken"]]


def spans_named(*names: str) -> list[ReadableSpan]:
    tracing, exporter = make_recorder()
    for name in names:
        tracing.spans.start(name).end()
    return list(exporter.get_finished_spans())


def test_a_batch_too_large_goes_again_in_halves(server: tuple[ThreadingHTTPServer, Script]) -> None:
    """413 for the whole, then for the first half and for one span alone: that span is lost,
    the other three arrive."""
    httpd, script = server
    script.statuses = [(413, {}), (413, {}), (200, {}), (413, {}), (200, {})]
    sender = OtlpHttpSender(endpoint(httpd))
    assert sender.deliver(spans_named("s0", "s1", "s2", "s3")) is False
    sender.shutdown()
    sent = [[s.name for s in decode_request(body)] for _, body in script.requests]
    assert sent == [["s0", "s1", "s2", "s3"], ["s0", "s1"], ["s0"], ["s1"], ["s2", "s3"]]
