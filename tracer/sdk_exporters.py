"""Fluoro's exporter under the SDK's ``SpanExporter`` interface, and any SDK exporter as a sink.

Loaded only when code uses the SDK's export module itself (an exporter passed to
``configure()``, or ``tracer.OtlpHttpExporter`` under the SDK's processors), so the tracer's own
cold start never imports that module (tracer/batching.py says why).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracer.exporter import OtlpHttpSender


class OtlpHttpExporter(OtlpHttpSender, SpanExporter):
    """OTLP/HTTP protobuf to one endpoint, as an SDK span exporter (for BatchSpanProcessor & co)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS if self.deliver(spans) else SpanExportResult.FAILURE


class ExporterSink:
    """An SDK span exporter as a batch's destination; what it calls while exporting is not traced
    (an exporter over an instrumented HTTP client would otherwise trace its own exports)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def deliver(self, spans: Sequence[ReadableSpan]) -> bool:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            return self.exporter.export(spans) == SpanExportResult.SUCCESS
        finally:
            detach(token)

    def shutdown(self) -> None:
        self.exporter.shutdown()
