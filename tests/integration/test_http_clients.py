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
from tracer.http_clients import (
    PEER_SERVICE_MAPPING_ENV,
    instrument_http,
    peer_service_mapping,
    remote_name,
    uninstrument_http,
)


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
    assert attributes_of(span)[semconv.TARGET_NAME] == "127.0.0.1"  # a host, not its ephemeral port
    assert semconv.PEER_SERVICE not in attributes_of(span)
    assert attributes_of(span)[semconv.HTTP_RESPONSE_STATUS_CODE] == status
    assert {f for f in (semconv.ERROR, semconv.THROTTLE, semconv.FAULT) if attributes_of(span).get(f)} == flags
    assert body.split("-")[2] == f"{span.context.span_id:016x}"  # the server saw this span as its parent


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_mapped_address_names_the_target_by_its_peer_service(
    recorder: Recorder, upstream: str, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = upstream.split(":")
    monkeypatch.setenv(PEER_SERVICE_MAPPING_ENV, f" nope , localhost=other, {host}:{port} = ledger ,10.0.0.9=x")
    instrument_http(recorder.tracing)
    try:
        url = f"http://{upstream}/200"
        requests.get(url, timeout=5) if client == "requests" else httpx.get(url, timeout=5)
    finally:
        uninstrument_http()
    (span,) = [s for s in recorder.spans() if s.kind is SpanKind.CLIENT]
    assert attributes_of(span)[semconv.TARGET_NAME] == "ledger"
    assert attributes_of(span)[semconv.PEER_SERVICE] == "ledger"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/x", ("ledger", "ledger")),  # host:port first
        ("http://127.0.0.1:9090/x", ("loopback", "loopback")),  # then the host
        ("http://User@API.Example.com:443/", ("api.example.com", None)),
        ("http://[::1]:80/", ("::1", None)),
        ("http://h:99999999/", ("h", None)),  # an impossible port: the host still names it
        ("/relative/only", ("", None)),
        ("not a url", ("", None)),
    ],
)
def test_remote_names(url: str, expected: tuple[str, str | None]) -> None:
    assert remote_name(url, {"127.0.0.1:8080": "ledger", "127.0.0.1": "loopback"}) == expected


def test_a_mapping_skips_malformed_pairs() -> None:
    assert peer_service_mapping("a=b,,=c,d=, e , F:1=g ") == {"a": "b", "f:1": "g"}
