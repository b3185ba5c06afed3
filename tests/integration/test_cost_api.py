"""Cost through the real daemon: spans of the stock OpenTelemetry SDK as a gateway and an arm64
Lambda send them, priced by GET /api/cost, /api/traces/{id}/cost and `fluoro cost`; bad
parameters get a 400 with the reason, an unknown trace a 404."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tests.integration.daemon import FLUORO, ROOT, Daemon
from tests.waiting import wait_until

GIB = 1024**3
REST, REQUEST, ARM_GBS = 3.5e-6, 2e-7, 0.0000133334


def invoke(daemon: Daemon) -> tuple[str, float]:
    """A gateway request into a 1 GB arm64 function; (trace id, its billed duration in s)."""
    providers = {
        "api/prod": TracerProvider(resource=Resource.create({"service.name": "api/prod"})),
        "quote": TracerProvider(resource=Resource.create({"service.name": "quote", "host.arch": "arm64"})),
    }
    for provider in providers.values():
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=daemon.traces_url)))
    gateway, function = providers["api/prod"].get_tracer("t"), providers["quote"].get_tracer("t")
    with gateway.start_as_current_span("GET /quote", kind=SpanKind.SERVER) as root:
        root.set_attribute("fluoro.origin", "AWS::ApiGateway::Stage")
        with function.start_as_current_span("quote", kind=SpanKind.SERVER) as handler:
            handler.set_attributes(
                {"fluoro.origin": "AWS::Lambda::Function", "faas.trigger": "http", "faas.max_memory": GIB}
            )
            time.sleep(0.02)
    for provider in providers.values():
        provider.shutdown()
    took_ns = handler.end_time - handler.start_time  # type: ignore[attr-defined]
    return f"{root.get_span_context().trace_id:032x}", -(-took_ns // 1_000_000) / 1000


@pytest.fixture(scope="module")
def billed(daemon: Daemon) -> dict[str, Any]:
    trace_id, billed_s = invoke(daemon)

    def priced() -> dict[str, Any]:
        response = daemon.get(f"/api/traces/{trace_id}/cost")
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return body if len(body.get("entries", [])) == 2 else {}

    return {"trace": trace_id, "bill": REST + REQUEST + billed_s * ARM_GBS, "by_span": wait_until(priced, 15, 0.2)}


def test_a_trace_costs_its_bill_by_span(billed: dict[str, Any]) -> None:
    body = billed["by_span"]
    assert body["total"] == pytest.approx(billed["bill"], rel=1e-9)
    assert body["currency"] == "USD" and body["region"] == "us-east-1" and body["group_by"] == "span"
    items = {item["item"] for entry in body["entries"] for item in entry["items"]}
    assert items == {"apigateway.rest_request", "lambda.request", "lambda.gb_second.arm64"}


def test_the_window_by_node_function_and_trace(daemon: Daemon, billed: dict[str, Any]) -> None:
    nodes = daemon.get("/api/cost", group_by="node").json()
    assert nodes["total"] == pytest.approx(billed["bill"], rel=1e-9)
    quote = next(e for e in nodes["entries"] if e["name"] == "quote")
    assert quote["type"] == "AWS::Lambda::Function" and quote["requests"] == 1
    assert quote["per_million_requests"] == pytest.approx(quote["total"] * 1e6)
    assert quote["per_hour"] == pytest.approx(quote["total"] * 4)  # the default window: 15 minutes
    functions = daemon.get("/api/cost", group_by="function").json()
    assert [e["name"] for e in functions["entries"]] == ["quote"]
    traces = daemon.get("/api/cost", group_by="trace", filter='service("quote")').json()
    assert [e["name"] for e in traces["entries"]] == [billed["trace"]]


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("/api/cost", {"group_by": "colour"}, 400, "group_by"),
        ("/api/cost", {"limit": 0}, 400, "limit"),
        ("/api/cost", {"filter": "service("}, 400, "column"),
        ("/api/cost", {"start": "yesterday-ish"}, 400, "start"),
        ("/api/traces/not-hex/cost", {}, 400, "trace"),
        ("/api/traces/0123456789abcdef0123456789abcdef/cost", {}, 404, "no trace"),
    ],
)
def test_bad_cost_requests_are_refused_with_the_reason(
    daemon: Daemon, billed: dict[str, Any], path: str, params: dict[str, Any], status: int, reason: str
) -> None:
    response = daemon.get(path, **params)
    assert response.status_code == status and reason in response.json()["detail"]


def test_fluoro_cost_lists_the_costliest_nodes(daemon: Daemon, billed: dict[str, Any]) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*FLUORO, "cost", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)

    text = run("--api", daemon.api_url, "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert "quote" in text.stdout and "api/prod" in text.stdout and "per 1M req" in text.stdout
    as_json = json.loads(run("--api", daemon.api_url, "--by", "function", "--format", "json").stdout)
    assert as_json["entries"][0]["name"] == "quote"
    bad = run("--api", daemon.api_url, "--by", "colour")
    assert bad.returncode == 2 and "colour" in bad.stderr and "Traceback" not in bad.stderr


# What clients have put in `aws.dynamodb.consumed_capacity` (semconv: a list of JSON texts of
# ConsumedCapacity): only the last call's first entry is usable.
CAPACITIES: list[Any] = [
    5,
    [],
    ["not json"],
    ['{"TableName": "tbl"}'],
    ['{"CapacityUnits": -3}'],
    ['{"CapacityUnits": "NaN"}'],
    ['{"CapacityUnits": 2.5}', "{broken"],
]


def test_capacities_a_call_cannot_be_billed_for_bill_nothing_and_break_no_report(tmp_path: Path) -> None:
    """Capacity units that are not JSON, not numbers, negative or missing are skipped: before, one
    entry that was not JSON failed the statement, so every cost report of its window was a 503,
    and a call without usable units made a line without a quantity, a 500."""
    daemon = Daemon(tmp_path / "capacity.duckdb").start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "capacity-fn"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=daemon.traces_url)))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("handler", kind=SpanKind.SERVER) as handler:
            handler.set_attributes({"fluoro.origin": "AWS::Lambda::Function", "faas.trigger": "http"})
            for capacity in CAPACITIES:
                with tracer.start_as_current_span("DynamoDB.GetItem", kind=SpanKind.CLIENT) as call:
                    call.set_attributes(
                        {
                            "rpc.system": "aws-api",
                            "rpc.service": "DynamoDB",
                            "rpc.method": "GetItem",
                            "aws.dynamodb.table_names": ["tbl"],
                            "aws.dynamodb.consumed_capacity": capacity,
                        }
                    )
        provider.shutdown()
        trace_id = f"{handler.get_span_context().trace_id:032x}"
        daemon.wait_for_trace(trace_id, 1 + len(CAPACITIES))
        by_span = daemon.get(f"/api/traces/{trace_id}/cost")
        assert by_span.status_code == 200, by_span.text
        items = [item for entry in by_span.json()["entries"] for item in entry["items"]]
        units = [item["quantity"] for item in items if item["item"] == "dynamodb.read_request_unit"]
        assert units == [2.5]
        assert {item["item"] for item in items} == {
            "lambda.request",
            "lambda.gb_second.x86_64",
            "dynamodb.read_request_unit",
        }
        for group_by in ("node", "function", "trace"):
            window = daemon.get("/api/cost", group_by=group_by)
            assert window.status_code == 200, window.text
        table = next(e for e in daemon.get("/api/cost", group_by="node").json()["entries"] if e["name"] == "tbl")
        assert [item["quantity"] for item in table["items"]] == [2.5]
    finally:
        code, log = daemon.stop()
        assert code == 0 and "Traceback" not in log, log
