"""The Jaeger-compatible query API (what Grafana's Jaeger data source calls) on a real daemon:
each route's shape pinned, over spans from the stock OpenTelemetry SDK and from the X-Ray
daemon protocol, and bad parameters answered in Jaeger's error shape."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from tests.integration.daemon import Daemon
from tests.integration.test_query_api import one_request
from tests.waiting import wait_until

ENVELOPE = {"data", "total", "limit", "offset", "errors"}
XRAY_TRACE = "1-6b13d9aa-0123456789abcdef01234567"


def send_xray_segment(daemon: Daemon) -> None:
    now = time.time()
    segment = {
        "name": "legacy-api", "id": "70de5b6f19ff9a0a", "trace_id": XRAY_TRACE, "start_time": now - 0.05,
        "end_time": now, "http": {"request": {"method": "GET", "url": "https://legacy/x"}, "response": {"status": 200}},
        "annotations": {"customer": "c7"},
    }  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b'{"format":"json","version":1}\n' + json.dumps(segment).encode(), ("127.0.0.1", daemon.xray_port))


@pytest.fixture(scope="module")
def traffic(daemon: Daemon) -> dict[str, Any]:
    ok, consumer = one_request(daemon, fail_ledger=False, customer="c1")
    failed, _ = one_request(daemon, fail_ledger=True, customer="c2")
    send_xray_segment(daemon)

    def settled() -> bool:
        edges = daemon.get("/jaeger/api/dependencies").json()["data"]
        return len(edges) >= 3 and all(e["callCount"] == 2 for e in edges if e["parent"] == "gateway")

    wait_until(lambda: daemon.get("/jaeger/api/traces/" + XRAY_TRACE).status_code == 200, 15, 0.2)
    wait_until(settled, timeout_s=15, poll_s=0.2)
    return {"ok": ok, "failed": failed, "consumer": consumer}


def data(daemon: Daemon, path: str, **params: object) -> Any:
    response = daemon.get(path, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ENVELOPE and body["errors"] is None
    return body["data"]


def test_services_and_operations(daemon: Daemon, traffic: dict[str, Any]) -> None:
    assert {"gateway", "orders", "ledger", "billing", "legacy-api"} <= set(data(daemon, "/jaeger/api/services"))
    assert data(daemon, "/jaeger/api/services/orders/operations") == ["POST /orders", "call ledger", "send"]
    servers = data(daemon, "/jaeger/api/operations", service="orders", spanKind="server")
    assert servers == [{"name": "POST /orders", "spanKind": "server"}]


def test_a_trace_in_jaegers_model(daemon: Daemon, traffic: dict[str, Any]) -> None:
    (trace,) = data(daemon, f"/jaeger/api/traces/{traffic['failed']}")
    assert set(trace) == {"traceID", "spans", "processes", "warnings"} and trace["traceID"] == traffic["failed"]
    by_name = {span["operationName"]: span for span in trace["spans"]}
    root, append = by_name["GET /order"], by_name["append"]
    assert set(root) == {"traceID", "spanID", "flags", "operationName", "references", "startTime", "duration",
                         "tags", "logs", "processID", "warnings"}  # fmt: skip
    assert root["references"] == [] and append["references"][0]["refType"] == "CHILD_OF"
    assert isinstance(root["startTime"], int) and 1e15 < root["startTime"] < 1e17  # microseconds
    tags = {t["key"]: t for t in root["tags"]}
    assert tags["http.response.status_code"] == {"key": "http.response.status_code", "type": "int64", "value": 500}
    assert {"key": "error", "type": "bool", "value": True} in append["tags"]  # a fault
    assert trace["processes"][root["processID"]]["serviceName"] == "gateway"


def test_a_consumer_follows_from_its_producer(daemon: Daemon, traffic: dict[str, Any]) -> None:
    (trace,) = data(daemon, f"/jaeger/api/traces/{traffic['consumer']}")
    (consume,) = trace["spans"]
    assert [r["refType"] for r in consume["references"]] == ["FOLLOWS_FROM"]


def test_an_xray_segment_in_jaegers_model(daemon: Daemon, traffic: dict[str, Any]) -> None:
    (trace,) = data(daemon, f"/jaeger/api/traces/{XRAY_TRACE}")
    (span,) = trace["spans"]
    assert span["operationName"] == "legacy-api" and span["spanID"] == "70de5b6f19ff9a0a"
    assert trace["processes"][span["processID"]]["serviceName"] == "legacy-api"
    found = data(daemon, "/jaeger/api/traces", service="legacy-api", tags=json.dumps({"customer": "c7"}))
    assert [t["traceID"] for t in found] == [trace["traceID"]]


def test_trace_search_by_service_operation_duration_and_tags(daemon: Daemon, traffic: dict[str, Any]) -> None:
    def ids(**params: object) -> set[str]:
        return {t["traceID"] for t in data(daemon, "/jaeger/api/traces", **params)}

    assert ids(service="ledger") == {traffic["ok"], traffic["failed"]}
    assert ids(service="ledger", tags=json.dumps({"error": "true"})) == {traffic["failed"]}
    assert ids(service="gateway", tags=json.dumps({"http.status_code": "500"})) == {traffic["failed"]}
    assert ids(service="orders", operation="send") == {traffic["ok"], traffic["failed"]}
    assert ids(service="orders", operation="nothing") == set()
    assert ids(service="gateway", minDuration="1h") == set()
    assert ids(service="gateway", maxDuration="1h", minDuration="0.1us") == {traffic["ok"], traffic["failed"]}
    past = str(int((time.time() - 7200) * 1e6))
    assert ids(service="gateway", start=past, end=str(int(past) + 10**6)) == set()


def test_dependencies_are_the_maps_edges(daemon: Daemon, traffic: dict[str, Any]) -> None:
    calls = {(d["parent"], d["child"]): d["callCount"] for d in data(daemon, "/jaeger/api/dependencies")}
    assert calls[("gateway", "orders")] == 2 and calls[("orders", "ledger")] == 2


@pytest.mark.parametrize(
    ("path", "params", "status", "said"),
    [
        ("/jaeger/api/traces", {}, 400, "service"),
        ("/jaeger/api/traces", {"service": "gateway", "minDuration": "fast"}, 400, "minDuration"),
        ("/jaeger/api/traces", {"service": "gateway", "start": "yesterday"}, 400, "start"),
        ("/jaeger/api/traces", {"service": "gateway", "start": "20", "end": "10"}, 400, "before"),
        ("/jaeger/api/traces", {"service": "gateway", "tags": "{not json"}, 400, "tags"),
        ("/jaeger/api/traces", {"service": "gateway", "tags": '{"http.status_code": "x"}'}, 400, "number"),
        ("/jaeger/api/traces/zzz", {}, 400, "trace id"),
        ("/jaeger/api/traces/0123456789abcdef0123456789abcdef", {}, 404, "not found"),
        ("/jaeger/api/dependencies", {"lookback": "-5"}, 400, "lookback"),
        ("/jaeger/api/dependencies", {"endTs": "²"}, 400, "endTs"),
        ("/jaeger/api/dependencies", {"endTs": "999999999999999999"}, 400, "endTs"),
        ("/jaeger/api/dependencies", {"lookback": str(32 * 86400 * 1000)}, 400, "lookback"),
        ("/jaeger/api/traces", {"service": "gateway", "start": "1"}, 400, "31 days"),
        ("/jaeger/api/traces", {"service": "gateway", "end": "999999999999999999"}, 400, "end"),
        ("/jaeger/api/traces", {"service": "gateway", "maxDuration": "99999999999999h"}, 400, "longer"),
        ("/jaeger/api/traces", {"service": "gateway", "limit": "٣"}, 400, "limit"),
        ("/jaeger/api/traces", {"service": "gateway", "tags": '{"http.status_code": "²"}'}, 400, "number"),
    ],
)
def test_bad_requests_get_jaegers_error_shape(
    daemon: Daemon, traffic: dict[str, Any], path: str, params: dict[str, str], status: int, said: str
) -> None:
    response = daemon.get(path, **params)
    assert response.status_code == status
    body = response.json()
    assert body["data"] is None and body["errors"][0]["code"] == status and said in body["errors"][0]["msg"]


def test_limits_are_parsed_in_jaegers_shape_too(daemon: Daemon, traffic: dict[str, Any]) -> None:
    assert len(data(daemon, "/jaeger/api/traces", service="ledger", limit="1")) == 1
    for bad in ("0", "1001", "many", "99999999999999999999"):
        response = daemon.get("/jaeger/api/traces", service="ledger", limit=bad)
        assert response.status_code == 400 and "limit" in response.json()["errors"][0]["msg"]
