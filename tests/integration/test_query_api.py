"""The query layer through the real daemon: spans from the stock OpenTelemetry SDK in three
services and an async consumer, then the service map, filter search, analytics and critical
path over HTTP, and the `fluoro traces` / `fluoro map` commands against it."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

from collector.api.group_routes import MAX_GROUPS
from tests.integration.daemon import FLUORO, ROOT, Daemon
from tests.waiting import wait_until


def tracer_for(daemon: Daemon, service: str) -> tuple[TracerProvider, trace.Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=daemon.traces_url)))
    return provider, provider.get_tracer("test")


def one_request(daemon: Daemon, fail_ledger: bool, customer: str) -> tuple[str, str]:
    """gateway -> orders -> ledger, orders sends a message that billing consumes; (trace, consumer trace)."""
    providers = {name: tracer_for(daemon, name) for name in ("gateway", "orders", "ledger", "billing")}
    gateway, orders, ledger, billing = (providers[n][1] for n in ("gateway", "orders", "ledger", "billing"))
    with gateway.start_as_current_span("GET /order", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.response.status_code", 500 if fail_ledger else 200)
        with gateway.start_as_current_span("call orders", kind=SpanKind.CLIENT) as call:
            call.set_attribute("server.address", "orders.local")
            with orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as entry:
                entry.set_attribute("fluoro.annotation.customer", customer)
                with (
                    orders.start_as_current_span("call ledger", kind=SpanKind.CLIENT),
                    ledger.start_as_current_span("append", kind=SpanKind.SERVER) as append,
                ):
                    if fail_ledger:
                        append.set_attribute("fluoro.fault", True)
                with orders.start_as_current_span("send", kind=SpanKind.PRODUCER) as send:
                    send.set_attribute("messaging.system", "aws_sqs")
                    send.set_attribute("messaging.destination.name", "invoices")
    time.sleep(0.05)  # the message waits in the queue
    with billing.start_as_current_span(
        "consume",
        kind=SpanKind.CONSUMER,
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        links=[Link(send.get_span_context())],
    ) as consume:
        pass
    for provider, _ in providers.values():
        provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}", f"{consume.get_span_context().trace_id:032x}"


@pytest.fixture(scope="module")
def traffic(daemon: Daemon) -> dict[str, Any]:
    first = one_request(daemon, fail_ledger=False, customer="c1")
    second = one_request(daemon, fail_ledger=True, customer="c2")

    def settled() -> dict[str, Any]:
        body: dict[str, Any] = daemon.get("/api/service-map").json()
        return body if len(body["edges"]) >= 5 and all(e["figures"]["requests"] == 2 for e in body["edges"]) else {}

    return {"ok": first, "failed": second, "map": wait_until(settled, timeout_s=15, poll_s=0.2)}


def edges_by_name(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    names = {n["id"]: n["name"] for n in body["nodes"]}
    return {(names[e["source"]], names[e["target"]]): e for e in body["edges"]}


def test_the_map_shows_the_chain_and_the_async_hop(traffic: dict[str, Any]) -> None:
    edges = edges_by_name(traffic["map"])
    assert set(edges) == {
        ("client", "gateway"),
        ("gateway", "orders"),
        ("orders", "ledger"),
        ("orders", "invoices"),
        ("invoices", "billing"),
    }
    assert edges["orders", "ledger"]["figures"]["faults"] == 1
    assert edges["invoices", "billing"]["is_async"] is True
    assert edges["invoices", "billing"]["event_age"]["p50_ms"] >= 40
    nodes = {n["name"]: n for n in traffic["map"]["nodes"]}
    assert nodes["invoices"]["type"] == "queue" and nodes["invoices"]["inferred"] is True
    assert nodes["ledger"]["health"] == "fault"


def test_filter_search_over_http(daemon: Daemon, traffic: dict[str, Any]) -> None:
    found = daemon.get("/api/traces", filter='service("ledger") { fault } AND annotation.customer = "c2"').json()
    assert [t["trace_id"] for t in found["traces"]] == [traffic["failed"][0]]
    edge = daemon.get("/api/traces", filter='edge("orders", "ledger") { !fault }').json()
    assert [t["trace_id"] for t in edge["traces"]] == [traffic["ok"][0]]
    response = daemon.get("/api/traces", filter='service("ledger") { fault')
    assert response.status_code == 400
    body = response.json()
    assert body["column"] == 26 and "expected" in body["reason"]
    assert daemon.get("/api/service-map", filter="responsetime >").status_code == 400


def test_the_map_with_a_filter(daemon: Daemon, traffic: dict[str, Any]) -> None:
    body = daemon.get("/api/service-map", filter="fault").json()
    edges = edges_by_name(body)
    assert edges["gateway", "orders"]["figures"]["requests"] == 1


def test_analytics_and_comparison(daemon: Daemon, traffic: dict[str, Any]) -> None:
    series = daemon.get("/api/analytics", node="ledger", step=3600).json()
    assert sum(p["requests"] for p in series["points"]) == 2
    assert sum(p["faults"] for p in series["points"]) == 1
    whole = daemon.get("/api/analytics").json()
    assert sum(p["requests"] for p in whole["points"]) == 4  # two requests, two consumed messages
    compare = daemon.get("/api/analytics/compare", node="ledger", by="cold_start").json()
    assert compare["groups"][0]["requests"] == 2
    assert daemon.get("/api/analytics", caller="orders").status_code == 400
    assert daemon.get("/api/analytics/compare", by="colour").status_code == 400


def test_critical_path_follows_the_message(daemon: Daemon, traffic: dict[str, Any]) -> None:
    trace_id, consumer_trace = traffic["ok"]
    body = daemon.get(f"/api/traces/{trace_id}/critical-path").json()
    services = [s["service"] for s in body["segments"]]
    assert services[0] == "gateway" and services[-1] == "billing"
    assert consumer_trace in {s["trace_id"] for s in body["segments"]}
    assert daemon.get(f"/api/traces/{'cd' * 16}/critical-path").status_code == 404


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLUORO, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_fluoro_traces_and_map_commands(daemon: Daemon, traffic: dict[str, Any]) -> None:
    listed = run_cli("traces", "fault", "--api", daemon.api_url, "--since", "1h")
    assert listed.returncode == 0, listed.stderr
    assert traffic["failed"][0] in listed.stdout and traffic["ok"][0] not in listed.stdout
    as_json = run_cli("map", "--api", daemon.api_url, "--format", "json")
    assert set(edges_by_name(json.loads(as_json.stdout))) == set(edges_by_name(traffic["map"]))
    text = run_cli("map", "--api", daemon.api_url, "--since", "1h")
    assert "invoices" in text.stdout and "async" in text.stdout
    bad = run_cli("traces", "service(", "--api", daemon.api_url)
    assert bad.returncode == 1 and "column" in bad.stderr and "Traceback" not in bad.stderr


def post_group(daemon: Daemon, body: object, content_type: str = "application/json") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{daemon.api_url}/api/groups", content=content, headers={"Content-Type": content_type}, timeout=10
    )


def test_a_group_selects_its_traces_on_every_query(daemon: Daemon, traffic: dict[str, Any]) -> None:
    created = post_group(daemon, {"name": "customer c2", "filter": ' annotation.customer = "c2" '})
    assert created.status_code == 201 and created.json()["filter"] == 'annotation.customer = "c2"'
    assert [g["name"] for g in daemon.get("/api/groups").json()["groups"]] == ["customer c2"]
    found = daemon.get("/api/traces", group="customer c2").json()
    assert [t["trace_id"] for t in found["traces"]] == [traffic["failed"][0]]  # retroactive: stored before
    # a group and a filter: traces matching both
    assert daemon.get("/api/traces", group="customer c2", filter="!fault").json()["traces"] == []
    edges = edges_by_name(daemon.get("/api/service-map", group="customer c2").json())
    assert edges["gateway", "orders"]["figures"]["requests"] == 1
    series = daemon.get("/api/analytics", group="customer c2", node="ledger", step=3600).json()
    assert sum(p["faults"] for p in series["points"]) == 1
    unknown = daemon.get("/api/traces", group="nobody")
    assert unknown.status_code == 400 and "no group named 'nobody'" in unknown.json()["detail"]
    assert httpx.delete(f"{daemon.api_url}/api/groups/customer c2", timeout=10).status_code == 204
    assert httpx.delete(f"{daemon.api_url}/api/groups/customer c2", timeout=10).status_code == 404
    assert daemon.get("/api/groups/customer c2").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ({"name": "x", "filter": 'service("a") {'}, "application/json", 400, "column"),
        ({"name": "", "filter": "fault"}, "application/json", 400, "a group's name"),
        ({"name": "<script>", "filter": "fault"}, "application/json", 400, "a group's name"),
        ({"name": "x" * 65, "filter": "fault"}, "application/json", 400, "a group's name"),
        ({"name": "x", "filter": 7}, "application/json", 400, "filter"),
        ({"name": "x", "filter": "fault", "extra": 1}, "application/json", 400, "nothing else"),
        (["x", "fault"], "application/json", 400, "JSON object"),
        (b"\xff\xfe{", "application/json", 400, "not JSON"),
        (b"[" * 8_000 + b"]" * 8_000, "application/json", 400, "not JSON"),  # deeper than Python's recursion
        ({"name": "x", "filter": "fault"}, "text/plain", 415, "application/json"),
        ({"name": "x", "filter": "fault " * 4_000}, "application/json", 413, "at most"),
    ],
)
def test_a_bad_group_is_refused_with_the_reason(
    daemon: Daemon, body: object, content_type: str, status: int, says: str
) -> None:
    answer = post_group(daemon, body, content_type)
    assert answer.status_code == status and says in answer.text, answer.text
    assert "x" not in {g["name"] for g in daemon.get("/api/groups").json()["groups"]}


def test_groups_are_capped(daemon: Daemon) -> None:
    with httpx.Client(timeout=10) as client:
        have = len(daemon.get("/api/groups").json()["groups"])
        for n in range(MAX_GROUPS - have):
            answer = client.post(f"{daemon.api_url}/api/groups", json={"name": f"g{n:03d}", "filter": "fault"})
            assert answer.status_code == 201
        over = client.post(f"{daemon.api_url}/api/groups", json={"name": "one too many", "filter": "fault"})
        assert over.status_code == 409
        replaced = client.post(f"{daemon.api_url}/api/groups", json={"name": "g000", "filter": "error"})
        assert replaced.status_code == 201  # a new expression for a name is no new group
        for n in range(MAX_GROUPS - have):
            assert client.delete(f"{daemon.api_url}/api/groups/g{n:03d}").status_code == 204


def test_fluoro_groups_commands(daemon: Daemon, traffic: dict[str, Any]) -> None:
    added = run_cli("groups", "add", "faults", "fault", "--api", daemon.api_url)
    assert added.returncode == 0, added.stderr
    listed = run_cli("groups", "list", "--api", daemon.api_url)
    assert "faults" in listed.stdout and "fault" in listed.stdout
    found = run_cli("traces", "--group", "faults", "--api", daemon.api_url, "--since", "1h")
    assert traffic["failed"][0] in found.stdout and traffic["ok"][0] not in found.stdout
    as_json = json.loads(run_cli("map", "--group", "faults", "--api", daemon.api_url, "--format", "json").stdout)
    assert edges_by_name(as_json)["gateway", "orders"]["figures"]["requests"] == 1
    bad = run_cli("groups", "add", "broken", "service(", "--api", daemon.api_url)
    assert bad.returncode == 1 and "column" in bad.stderr and "Traceback" not in bad.stderr
    assert run_cli("groups", "rm", "faults", "--api", daemon.api_url).returncode == 0
    gone = run_cli("groups", "rm", "faults", "--api", daemon.api_url)
    assert gone.returncode == 1 and "404" in gone.stderr
