"""`fluoro trace ID` against a real daemon: the tree, flags, cold start, critical path and cost
of one trace, hostile names printed inert, and clear errors for unknown or malformed ids."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tests.integration.daemon import FLUORO, ROOT, Daemon
from tests.waiting import wait_until

HOSTILE = "\x1b[2J[bold red]boom[/]\nforged line"


def send(daemon: Daemon) -> str:
    providers = {
        name: TracerProvider(resource=Resource.create({"service.name": name})) for name in ("api/prod", "withdraw")
    }
    for provider in providers.values():
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=daemon.traces_url)))
    gateway, function = (providers[n].get_tracer("t") for n in ("api/prod", "withdraw"))
    with gateway.start_as_current_span("POST /withdraw", kind=SpanKind.SERVER) as root:
        root.set_attributes({"fluoro.origin": "AWS::ApiGateway::Stage", "http.response.status_code": 502})
        with function.start_as_current_span("withdraw", kind=SpanKind.SERVER) as handler:
            handler.set_attributes({"faas.trigger": "http", "faas.coldstart": True, "fluoro.fault": True})
            with function.start_as_current_span(HOSTILE, kind=SpanKind.CLIENT) as call:
                call.set_attributes({"fluoro.target.type": "AWS::DynamoDB::Table", "fluoro.target.name": "accounts"})
                time.sleep(0.01)
    for provider in providers.values():
        provider.shutdown()
    trace_id = f"{root.get_span_context().trace_id:032x}"
    span_id = f"{handler.get_span_context().span_id:016x}"
    records = [
        {"timeUnixNano": str(time.time_ns()), "traceId": trace_id, "spanId": span_id,
         "severityText": "ERROR", "body": {"stringValue": f"ledger down {HOSTILE}"}},
        {"timeUnixNano": str(time.time_ns()), "traceId": trace_id, "body": {"stringValue": "in no span"}},
    ]  # fmt: skip
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    logs_url = daemon.traces_url.replace("/v1/traces", "/v1/logs")
    assert httpx.post(logs_url, json=logs, timeout=10).status_code == 200
    return trace_id


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLUORO, "trace", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def trace_id(daemon: Daemon) -> str:
    sent = send(daemon)
    wait_until(lambda: len(daemon.trace(sent)) == 3, timeout_s=15, poll_s=0.2)
    return sent


def test_the_tree_with_flags_critical_path_and_cost(daemon: Daemon, trace_id: str) -> None:
    shown = run(trace_id, "--api", daemon.api_url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id}  (3 spans)")
    handler = next(line for line in lines if "withdraw (AWS::Lambda::Function)  withdraw" in line)
    assert "[fault, cold start]" in handler and "◆ critical path" in handler
    call = next(line for line in lines if "-> accounts (AWS::DynamoDB::Table)" in line)
    assert call.index("withdraw") > handler.index("withdraw")  # indented under its parent
    assert "critical path: api/prod: POST /withdraw" in shown.stdout and "cost: " in shown.stdout
    record = next(line for line in lines if "log +" in line and "ledger down" in line)
    assert "ERROR ledger down" in record and record.index("log") > handler.index("withdraw")  # under its span
    assert any("log +" in line and "in no span" in line for line in lines)


def test_hostile_names_are_printed_inert(daemon: Daemon, trace_id: str) -> None:
    shown = run(trace_id, "--api", daemon.api_url).stdout
    assert "\x1b" not in shown
    assert "\\x1b[2J[bold red]boom[/]\\nforged line" in shown  # escaped, markup left as text
    assert "ledger down \\x1b[2J[bold red]boom[/]\\nforged line" in shown  # a log record's body too
    assert not any(line.startswith("forged line") for line in shown.splitlines())


def test_json_holds_the_trace_its_path_and_its_cost(daemon: Daemon, trace_id: str) -> None:
    body: dict[str, Any] = json.loads(run(trace_id, "--api", daemon.api_url, "--format", "json").stdout)
    assert {s["name"] for s in body["trace"]["spans"]} == {"POST /withdraw", "withdraw", HOSTILE}
    assert body["critical_path"]["trace_id"] == trace_id and body["cost"]["group_by"] == "span"
    assert [r["body"] for r in body["logs"]["logs"]] == [f"ledger down {HOSTILE}", "in no span"]


@pytest.mark.parametrize(
    ("given", "said"),
    [("0123456789abcdef0123456789abcdef", "no trace"), ("not-an-id", "trace id"), ("abc?filter=x", "trace id")],
)
def test_a_bad_or_unknown_id_is_one_clear_line(daemon: Daemon, given: str, said: str) -> None:
    shown = run(given, "--api", daemon.api_url)
    assert shown.returncode == 1 and said in shown.stderr and "Traceback" not in shown.stderr
