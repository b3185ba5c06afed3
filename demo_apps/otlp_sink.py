"""A tiny OTLP/HTTP receiver on a loopback port that keeps the spans it is sent, decoded.

For the tracer example, the tracer's integration tests and its benchmark, until (and beside)
the real collector: it answers ``POST /v1/traces`` (protobuf, optionally gzip) and decodes each
request with opentelemetry-proto into :class:`ReceivedSpan` values. ``keep=False`` only counts
spans (parsing, not converting), for benchmarks; ``GET /stats`` reports the counts as JSON.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KIND_NAMES = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def plain_value(value: AnyValue) -> Any:
    """A protobuf AnyValue as a Python value."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the sink decoded it."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    status_code: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def decode_request(body: bytes) -> list[ReceivedSpan]:
    """The spans in an ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: plain_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KIND_NAMES.get(span.kind, "UNSPECIFIED"),
                        service=str(resource.get("service.name", "")),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={kv.key: plain_value(kv.value) for kv in span.attributes},
                        events=[(e.name, {kv.key: plain_value(kv.value) for kv in e.attributes}) for e in span.events],
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        status_code=span.status.code,
                    )
                )
    return spans


class OtlpSink:
    """Collects spans POSTed to ``http://127.0.0.1:<port>/v1/traces``."""

    def __init__(self, *, keep: bool = True, host: str = "127.0.0.1", port: int = 0) -> None:
        self.keep = keep
        self.spans: list[ReceivedSpan] = []
        self.span_count = 0
        self.requests = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/traces"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                try:
                    sink.accept(body)
                except Exception as exc:  # noqa: BLE001 - reported to the client as a 400
                    self.send_response(400)
                    message = str(exc).encode()
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                with sink._lock:
                    stats = {"spans": sink.span_count, "requests": sink.requests, "bytes": sink.bytes_received}
                body = json.dumps(stats).encode()
                self.send_response(200 if self.path == "/stats" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def accept(self, body: bytes) -> None:
        if self.keep:
            spans = decode_request(body)
            count = len(spans)
        else:
            spans = []
            request = ExportTraceServiceRequest.FromString(body)
            count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with self._changed:
            self.requests += 1
            self.span_count += count
            self.bytes_received += len(body)
            self.spans.extend(spans)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedSpan]:
        """Block until at least `count` spans arrived (or the timeout); return all of them."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.spans) >= count, timeout_s)
            return list(self.spans)

    def start(self) -> OtlpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
