"""Fluoro's pytest plugin: the ``fluoro_traces`` fixture (registered as the ``fluoro`` pytest11
entry point, so installing the tracer is enough).

By default the fixture captures, in process and without a collector, every span the tracer
finishes during the test (its decorators, handlers, ASGI middleware and AWS/HTTP hooks; code
that calls ``tracer.configure()`` during the test gets the same capturing pipeline). With
``pytest --fluoro-collector URL`` (or by overriding the ``fluoro_collector_url`` fixture) it
reads instead what that running collector received since the test began: an end-to-end test of
a deployed stack, whose functions trace from their own processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracer.coldstart import ProcessFacts
from tracer.runtime import ACTIVE, Tracing
from tracer.settings import resolve_settings
from tracer.testing.fluoro_traces import FluoroTraces
from tracer.testing.sources import CapturedSpans, CollectorSpans

__all__ = ["FluoroTraces", "fluoro_collector_token", "fluoro_collector_url", "fluoro_service_name", "fluoro_traces"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fluoro", "Fluoro trace assertions")
    group.addoption(
        "--fluoro-collector",
        default=os.environ.get("FLUORO_COLLECTOR_URL") or None,
        metavar="URL",
        help="fluoro_traces reads what this running collector's query API received during each test",
    )
    group.addoption(
        "--fluoro-collector-token",
        default=os.environ.get("FLUORO_TOKEN") or None,
        metavar="TOKEN",
        help="the collector's bearer token (default: FLUORO_TOKEN)",
    )


@pytest.fixture
def fluoro_collector_url(request: pytest.FixtureRequest) -> str | None:
    """The collector fluoro_traces reads (None: capture in process); override to point it at one."""
    url: str | None = request.config.getoption("fluoro_collector")
    return url


@pytest.fixture
def fluoro_collector_token(request: pytest.FixtureRequest) -> str | None:
    token: str | None = request.config.getoption("fluoro_collector_token")
    return token


@pytest.fixture
def fluoro_service_name() -> str | None:
    """The service the captured spans belong to (None: OTEL_SERVICE_NAME, AWS_LAMBDA_FUNCTION_NAME,
    as configure() would find it); override it for the function under test."""
    return None


@pytest.fixture
def fluoro_traces(
    fluoro_collector_url: str | None, fluoro_collector_token: str | None, fluoro_service_name: str | None
) -> Iterator[FluoroTraces]:
    """The traces this test makes, to find by filter expression and assert on."""
    if fluoro_collector_url:
        yield FluoroTraces(CollectorSpans(fluoro_collector_url, time.time(), fluoro_collector_token))
        return
    exporter = InMemorySpanExporter()
    settings = resolve_settings(os.environ, service_name=fluoro_service_name, sampler="parentbased_always_on")
    # Each test is a fresh execution environment: its first invocation is a cold start.
    tracing = Tracing(settings, exporter=exporter, batch=False, process=ProcessFacts(time.time_ns()))
    previous = ACTIVE.pin(tracing)
    try:
        yield FluoroTraces(CapturedSpans(tracing, exporter))
    finally:
        ACTIVE.unpin(previous)
        tracing.shutdown()
