"""The configured tracing pipeline, and the one that ``@traced`` uses.

A :class:`Tracing` owns a TracerProvider (X-Ray id generator, sampler, resource), the span
processors (init-span buffer -> batcher -> OTLP sender) and the propagator. Nothing here
is global except :data:`ACTIVE`, the explicit slot ``configure()`` fills and decorators read:
decorators are applied at import time, before any configuration exists, so they must look the
pipeline up per call. Tests build their own ``Tracing`` with an in-memory exporter and enter
``tracing.activated()``; nothing touches the OpenTelemetry global provider unless asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Final

import opentelemetry.sdk.resources as sdk_resources
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource, ResourceDetector
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.sdk.version import __version__ as SDK_VERSION

from tracer.annotations import AnnotationBudget
from tracer.batching import ExportEachSpan, SpanBatcher, SpanSink
from tracer.coldstart import PROCESS, InitSpanBuffer, ProcessFacts
from tracer.exporter import OtlpHttpSender
from tracer.propagation import build_propagator
from tracer.sampling import SamplerChoice, build_sampler, wrap_custom_sampler
from tracer.settings import Settings, resolve_settings
from tracer.spans import SpanFactory, XRayIds
from tracer.tail_keep import TailAwareSampler, TailBuffer, TailRouter, TailStats

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_logger = logging.getLogger(__name__)

SCOPE_NAME: Final = "fluoro.tracer"
SCOPE_VERSION: Final = "0.1.0"


# The SDK's default service.instance.id (one UUID a process; SDK 1.39+), used as Resource.create does.
_INSTANCE_ID_DETECTOR: type[ResourceDetector] | None = getattr(sdk_resources, "ServiceInstanceIdResourceDetector", None)


def build_resource(settings: Settings) -> Resource:
    """The SDK's default resource (telemetry.sdk.*) under the configured attributes and service name.

    Settings already hold what the SDK's "otel" detector reads (OTEL_RESOURCE_ATTRIBUTES,
    OTEL_SERVICE_NAME), so the resource is built here unless other detectors are named:
    Resource.create runs its detectors on a new thread pool, ~2 ms of every cold start."""
    attributes = {**settings.resource_attributes, "service.name": settings.service_name}
    if settings.resource_detectors:
        return Resource.create(attributes)
    sdk = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": SDK_VERSION,
    }
    instance = _INSTANCE_ID_DETECTOR().detect().attributes if _INSTANCE_ID_DETECTOR is not None else {}
    return Resource({**sdk, **instance, **attributes})


def _sink_of(exporter: SpanExporter | OtlpHttpSender) -> SpanSink:
    """Fluoro's sender as it is; any other exporter through the SDK's interface."""
    if isinstance(exporter, OtlpHttpSender):
        return exporter
    from tracer.sdk_exporters import ExporterSink  # its caller has loaded the SDK's export module

    return ExporterSink(exporter)


class Tracing:
    """One tracing pipeline: provider, fast span factory, processors, propagator."""

    def __init__(
        self,
        settings: Settings,
        *,
        exporter: SpanExporter | None = None,
        sampler: Sampler | None = None,
        batch: bool = True,
        process: ProcessFacts = PROCESS,
    ) -> None:
        self.settings = settings
        self.process = process
        choice: SamplerChoice = (
            wrap_custom_sampler(sampler) if sampler else build_sampler(settings.sampler, settings.sampler_arg)
        )
        self.resource = build_resource(settings)
        self.exporter: SpanExporter | OtlpHttpSender = exporter or OtlpHttpSender(
            settings.traces_endpoint,
            headers=settings.headers,
            compression=settings.compression,
            timeout_s=settings.export_timeout_s,
        )
        sink = _sink_of(self.exporter)
        export_processor: SpanProcessor = (
            SpanBatcher(
                sink,
                delay_ms=settings.batch_delay_ms,
                max_queue=settings.batch_max_queue,
                max_batch=settings.batch_max_spans,
            )
            if batch
            else ExportEachSpan(sink)
        )
        self.init_buffer = InitSpanBuffer(export_processor, holding=settings.lambda_environment and not process.invoked)
        self.tail = (
            TailBuffer(self.init_buffer, settings.tail_keep, lambda: self.init_buffer.holding)
            if settings.tail_keep.enabled
            else None
        )
        provider_sampler = TailAwareSampler(choice.sampler) if self.tail is not None else choice.sampler
        self.provider = TracerProvider(sampler=provider_sampler, resource=self.resource, id_generator=XRayIds())
        self.provider.add_span_processor(
            TailRouter(self.init_buffer, self.tail) if self.tail is not None else self.init_buffer
        )
        self.spans = SpanFactory(
            resource=self.resource,
            scope=InstrumentationScope(SCOPE_NAME, SCOPE_VERSION),
            sampling=choice,
            processor=self.init_buffer,
            tail=self.tail,
            limits=(
                settings.attribute_value_length,
                settings.attribute_count_limit,
                settings.event_count_limit,
                settings.link_count_limit,
                settings.event_attribute_count_limit,
                settings.link_attribute_count_limit,
            ),
        )
        self.propagator: TextMapPropagator = build_propagator(settings.propagators)
        self.annotations = AnnotationBudget()
        self._closed = False

    def tracer(self, name: str = SCOPE_NAME) -> trace_api.Tracer:
        """An SDK tracer on this pipeline's provider, for code that wants the plain OTel API."""
        return self.provider.get_tracer(name)

    def stats(self) -> TailStats | None:
        """What tail-keep kept, discarded and dropped so far (None when it is off)."""
        return self.tail.stats() if self.tail is not None else None

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Export everything ended so far; True if it all went out within `timeout_s`."""
        try:
            return self.provider.force_flush(int(timeout_s * 1000))
        except Exception:
            _logger.exception("fluoro: flush failed")
            return False

    def shutdown(self) -> None:
        """Flush and stop the export thread; the pipeline records nothing afterwards."""
        if self._closed:
            return
        self._closed = True
        try:
            self.provider.shutdown()
        except Exception:
            _logger.exception("fluoro: shutdown failed")

    @contextlib.contextmanager
    def activated(self) -> Iterator[Tracing]:
        """Make this the pipeline ``@traced`` uses, for the duration of a with-block."""
        previous = ACTIVE.swap(self)
        try:
            yield self
        finally:
            ACTIVE.swap(previous)


class ActiveTracing:
    """The slot holding the pipeline decorators use; None means tracing is off (a no-op).

    A test's capturing pipeline is *pinned* (tracer.pytest_plugin): while it is, configure()
    answers it instead of replacing it, so application code that configures tracing itself
    (at import, in a handler) still traces into the test."""

    def __init__(self) -> None:
        self.tracing: Tracing | None = None
        self.pinned: Tracing | None = None
        self._lock = threading.Lock()

    def swap(self, tracing: Tracing | None) -> Tracing | None:
        with self._lock:
            previous, self.tracing = self.tracing, tracing
            return previous

    def pin(self, tracing: Tracing) -> Tracing | None:
        """Make `tracing` the pipeline until unpin(); returns the one it replaced."""
        with self._lock:
            previous, self.tracing, self.pinned = self.tracing, tracing, tracing
            return previous

    def unpin(self, previous: Tracing | None) -> None:
        """Put back the pipeline pin() replaced."""
        with self._lock:
            self.tracing, self.pinned = previous, None


ACTIVE = ActiveTracing()
_GLOBAL_SET = threading.Event()


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    sampler: str | Sampler | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    compression: str | None = None,
    propagators: tuple[str, ...] | None = None,
    tail_keep: bool | None = None,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
    env: Mapping[str, str] | None = None,
) -> Tracing | None:
    """Set up tracing for this process and make it the one ``@traced`` uses.

    Arguments win over the OTEL_* environment. Calling again with the same settings returns
    the running pipeline; with different ones, the old pipeline is flushed and replaced.
    Returns None (and tracing stays a no-op) when OTEL_SDK_DISABLED is true, or when the
    settings are unusable (the reason is logged as an error): setting up telemetry never
    raises into the application.
    """
    settings = resolve_settings(
        os.environ if env is None else env,
        service_name=service_name,
        endpoint=endpoint,
        sampler=sampler if isinstance(sampler, str) else None,
        resource_attributes=resource_attributes,
        headers=headers,
        compression=compression,
        propagators=propagators,
        tail_keep=tail_keep,
    )
    if settings.disabled:
        return None
    if ACTIVE.pinned is not None:  # a test is capturing: its pipeline stays
        return ACTIVE.pinned
    current = ACTIVE.tracing
    if current is not None and current.settings == settings and exporter is None and not isinstance(sampler, Sampler):
        return current
    try:
        tracing = Tracing(settings, exporter=exporter, sampler=sampler if isinstance(sampler, Sampler) else None)
    except ValueError as exc:  # a bad endpoint or sampling rules: say so, never break the app
        _logger.error("fluoro: tracing is off: %s", exc)
        return None
    previous = ACTIVE.swap(tracing)
    if previous is not None:
        previous.shutdown()
    if set_global:
        _install_globals(tracing)
    return tracing


def _install_globals(tracing: Tracing) -> None:
    """Point OpenTelemetry's global propagator (and, once, its provider) at `tracing`."""
    propagate.set_global_textmap(tracing.propagator)
    if not _GLOBAL_SET.is_set():
        _GLOBAL_SET.set()
        trace_api.set_tracer_provider(tracing.provider)


def active() -> Tracing | None:
    """The pipeline decorators currently use."""
    return ACTIVE.tracing


def stats() -> TailStats | None:
    """Tail-keep's counts for the active pipeline (None without one, or with tail-keep off)."""
    tracing = ACTIVE.tracing
    return tracing.stats() if tracing is not None else None


def flush(timeout_s: float = 5.0) -> bool:
    """Flush the active pipeline (True when there is nothing to do)."""
    tracing = ACTIVE.tracing
    return tracing.flush(timeout_s) if tracing is not None else True


def shutdown() -> None:
    """Flush and stop the active pipeline; decorators become no-ops again."""
    tracing = ACTIVE.swap(None)
    if tracing is not None:
        tracing.shutdown()
