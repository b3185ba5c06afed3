"""The spans the local cloud records as AWS's own services: one TracerProvider per service name
(a Lambda function's service view, a state machine, a distribution), exporting over OTLP.

Each provider carries its service name as a resource, as AWS's segments carry their name, so
the cloud's spans land on the map as the services they stand for.
"""

from __future__ import annotations

import threading

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tracer import OtlpHttpExporter


class ServiceTracers:
    """Tracers by service name; `shutdown()` flushes them all."""

    def __init__(self, otlp_endpoint: str | None, scope: str) -> None:
        self.otlp_endpoint, self.scope = otlp_endpoint, scope
        self._providers: dict[str, TracerProvider] = {}
        self._lock = threading.Lock()

    def tracer(self, service: str) -> trace_api.Tracer:
        with self._lock:
            provider = self._providers.get(service)
            if provider is None:
                provider = TracerProvider(resource=Resource.create({"service.name": service, "cloud.provider": "aws"}))
                if self.otlp_endpoint:
                    exporter = OtlpHttpExporter(self.otlp_endpoint)
                    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
                self._providers[service] = provider
        return provider.get_tracer(self.scope)

    def shutdown(self) -> None:
        with self._lock:
            providers = list(self._providers.values())
        for provider in providers:
            provider.shutdown()
