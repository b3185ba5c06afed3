"""Shared fixtures: each test gets its own tracing pipeline, never the global one."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.postgres_cluster import PostgresCluster
from tracer.coldstart import ProcessFacts
from tracer.runtime import Tracing
from tracer.settings import Settings


class Recorder:
    """A Tracing with an in-memory exporter, active for the test."""

    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self.exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    def by_name(self, name: str) -> ReadableSpan:
        matches = [s for s in self.spans() if s.name == name]
        assert len(matches) == 1, f"expected one span named {name!r}, got {[s.name for s in self.spans()]}"
        return matches[0]


def make_recorder(
    *,
    sampler: str = "parentbased_always_on",
    lambda_environment: bool = False,
    batch: bool = False,
    lambda_phases: bool = False,
) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    settings = Settings(
        service_name="test-service",
        sampler=sampler,
        lambda_environment=lambda_environment,
        lambda_phases=lambda_phases,
    )
    process = ProcessFacts(time.time_ns() - 50_000_000)
    return Tracing(settings, exporter=exporter, batch=batch, process=process), exporter


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    tracing, exporter = make_recorder()
    with tracing.activated():
        yield Recorder(tracing, exporter)
    tracing.shutdown()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session's lakes (each test takes a database)."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The X-Ray SDK opens a UDP socket for its global recorder at import and never closes it."""
    xray = sys.modules.get("aws_xray_sdk.core")
    if xray is not None:
        xray.xray_recorder.emitter._socket.close()
