"""The insight watch in a real daemon: 16 minutes of traffic from the OpenTelemetry SDK (timed in
the past), the last one failing at the ledger; the daemon opens an insight rooted there, lists
it at /api/insights and POSTs it to --notify-url."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.integration.daemon import Daemon
from tests.waiting import wait_until
from tests.webhook import Receiver

MINUTES = 16
PER_MINUTE = 30
MS = 1_000_000


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    receiving.close()


def send_traffic(daemon: Daemon, now_ns: int) -> None:
    """gateway -> orders -> ledger, PER_MINUTE requests a minute; in the last minute half fail at the ledger.

    Both services' spans go in one request: sent apart, the watch (every second) could see the
    gateway failing before the calls beneath it arrived, and root the insight there."""
    recorded = InMemorySpanExporter()
    providers = {
        name: TracerProvider(resource=Resource.create({"service.name": name})) for name in ("gateway", "orders")
    }
    for provider in providers.values():
        provider.add_span_processor(SimpleSpanProcessor(recorded))
    gateway, orders = (providers[n].get_tracer("insights") for n in ("gateway", "orders"))
    first_ns = now_ns - (MINUTES * 60 + 8) * 10**9
    for n in range(MINUTES * PER_MINUTE):
        start = first_ns + n * (60 * 10**9 // PER_MINUTE)
        failing = n >= (MINUTES - 1) * PER_MINUTE and n % 2 == 0
        root = gateway.start_span("GET /orders", kind=SpanKind.SERVER, start_time=start)
        root.set_attribute("http.response.status_code", 502 if failing else 200)
        served = orders.start_span(
            "GET /orders", trace.set_span_in_context(root), SpanKind.SERVER, start_time=start + MS
        )
        served.set_attribute("http.response.status_code", 500 if failing else 200)
        call = orders.start_span("POST", trace.set_span_in_context(served), SpanKind.CLIENT, start_time=start + 2 * MS)
        call.set_attributes({"peer.service": "ledger", "http.response.status_code": 503 if failing else 200})
        call.end(end_time=start + 20 * MS)
        served.end(end_time=start + 25 * MS)
        root.end(end_time=start + 30 * MS)
    exporter = OTLPSpanExporter(endpoint=daemon.traces_url)
    assert exporter.export(recorded.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_a_daemon_opens_an_insight_where_the_failures_started_and_posts_it(tmp_path: Path, hook: Receiver) -> None:
    daemon = Daemon(tmp_path / "insights.duckdb", extra_args=("--notify-url", hook.url, "--insights-every", "1s"))
    daemon.start()
    try:
        send_traffic(daemon, time.time_ns())
        opened = wait_until(
            lambda: [e for e in hook.bodies if e["event"] == "opened" and e["insight"]["kind"] == "fault"],
            timeout_s=20,  # within the fold interval (30 s): the watch reads what was acknowledged
            poll_s=0.5,
            describe=lambda: f"notifications: {hook.bodies}",
        )
        insight = opened[0]["insight"]
        assert insight["root_cause"]["name"] == "ledger" and insight["group"] is None
        assert {n["name"] for n in insight["impacted"]} >= {"ledger", "orders", "gateway"}
        listed = daemon.get("/api/insights", state="open").json()["insights"]
        assert insight["id"] in {i["id"] for i in listed}
        assert daemon.get("/api/insights", state="sideways").status_code == 400
    finally:
        code, output = daemon.stop()
    assert code == 0 and "Traceback" not in output, output
