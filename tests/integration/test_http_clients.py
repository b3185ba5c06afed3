"""instrument_http(): requests and httpx client spans against a real loopback server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests
from opentelemetry.trace import SpanKind

from tests.conftest import Recorder
from tests.recorded import attributes_of
from tracer import semconv
from tracer.http_clients import instrument_http, uninstrument_http


@pytest.fixture
def upstream() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status = int(self.path.strip("/") or 200)
            self.send_response(status)
            self.send_header("Content-Length", str(len(self.headers.get("traceparent", ""))))
            self.end_headers()
            self.wfile.write(self.headers.get("traceparent", "").encode())

        def log_message(self, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def instrumented(recorder: Recorder) -> Iterator[Recorder]:
    instrument_http(recorder.tracing)
    yield recorder
    uninstrument_http()


@pytest.mark.parametrize(
    ("client", "status", "flags"),
    [
        ("requests", 200, set()),
        ("requests", 429, {semconv.ERROR, semconv.THROTTLE}),
        ("httpx", 503, {semconv.FAULT}),
        ("httpx", 404, {semconv.ERROR}),
    ],
)
def test_client_span_with_target_flags_and_propagation(
    instrumented: Recorder, upstream: str, client: str, status: int, flags: set[str]
) -> None:
    url = f"http://{upstream}/{status}"
    body = requests.get(url, timeout=5).text if client == "requests" else httpx.get(url, timeout=5).text
    (span,) = [s for s in instrumented.spans() if s.kind is SpanKind.CLIENT]
    assert attributes_of(span)[semconv.TARGET_TYPE] == "remote"
    assert attributes_of(span)[semconv.TARGET_NAME] == upstream
    assert attributes_of(span)[semconv.HTTP_RESPONSE_STATUS_CODE] == status
    assert {f for f in (semconv.ERROR, semconv.THROTTLE, semconv.FAULT) if attributes_of(span).get(f)} == flags
    assert body.split("-")[2] == f"{span.context.span_id:016x}"  # the server saw this span as its parent
