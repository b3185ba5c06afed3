"""The daemon against a hostile client: every bad input gets a 4xx with its reason, nothing
else is hurt, and nothing in a span can break a page that shows it.

Each test is a finding of a fuzzing and hand-crafting session against `fluoro serve` that held
before its fix (a 500, a stored span that broke reads, a request refused whole for one bad value).
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.integration.daemon import Daemon
from tests.protowire import array_value, attribute, delimited, key_value, kvlist_value, request, span, string_value
from tests.waiting import wait_until

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def post(daemon: Daemon, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(daemon.traces_url, content=body, headers=headers, timeout=30)


def now_ns() -> int:
    return time.time_ns() - 1_000_000_000


def test_a_list_then_a_key_value_list_in_one_value_leaves_the_trace_readable(daemon: Daemon) -> None:
    trace_id = bytes.fromhex("a1" * 16)
    value = array_value(string_value("a")) + kvlist_value(key_value("k", string_value("v")))
    body = request([span(attribute("x", value), trace_id=trace_id, start_ns=now_ns(), end_ns=now_ns() + 5)])
    assert post(daemon, body, PROTOBUF).status_code == 200
    (stored,) = daemon.wait_for_trace(trace_id.hex(), 1)
    assert stored["attributes"]["x"] == {"k": "v"}  # type: ignore[index]
    assert daemon.get(f"/api/traces/{trace_id.hex()}/critical-path").status_code == 200


def json_span(span_id: str, **fields: Any) -> dict[str, Any]:
    start = now_ns()
    return {
        "traceId": "b2" * 16,
        "spanId": span_id,
        "name": "op",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        **fields,
    }


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"attributes": [{"key": "d", "value": {"doubleValue": "abc"}}]}, "doubleValue"),
        ({"attributes": [{"key": "l", "value": {"kvlistValue": ["a"]}}]}, "kvlistValue"),
        ({"attributes": [{"key": "a", "value": {"arrayValue": {"values": {"x": 1}}}}]}, "arrayValue"),
        ({"attributes": [{"key": "b", "value": {"boolValue": "yes"}}]}, "boolValue"),
        ({"attributes": [{"key": "i", "value": {"intValue": "9" * 30}}]}, "intValue"),
        ({"attributes": {"not": "a list"}}, "attributes"),
        ({"status": "broken"}, "status"),
        ({"events": [{"name": "e", "attributes": [{"key": "x", "value": {"stringValue": 5}}]}]}, "stringValue"),
        ({"name": ["not", "text"]}, "name"),
    ],
)
def test_a_bad_json_value_rejects_its_span_not_the_request(daemon: Daemon, bad: dict[str, Any], reason: str) -> None:
    good = json_span("0000000000000001")
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [good, json_span("0000000000000002", **bad)]}]}]}
    response = post(daemon, json.dumps(document).encode(), JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == 1 and reason in partial["errorMessage"]


def test_a_bad_resource_rejects_the_spans_it_covers(daemon: Daemon) -> None:
    spans = [json_span("0000000000000003"), json_span("0000000000000004")]
    document = {
        "resourceSpans": [
            {"resource": "not an object", "scopeSpans": [{"spans": spans}]},
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "fine"}}]},
                "scopeSpans": [{"spans": [json_span("0000000000000005")]}],
            },
        ]
    }
    response = post(daemon, json.dumps(document).encode(), JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == 2 and "resource" in partial["errorMessage"]


def test_a_gzip_body_of_several_members_is_read_whole(daemon: Daemon) -> None:
    trace_id = bytes.fromhex("c3" * 16)
    spans = [span(span_id=(i + 1).to_bytes(8, "big"), trace_id=trace_id, start_ns=now_ns()) for i in range(6)]
    body = request(spans)
    cut = len(body) // 2
    response = post(
        daemon, gzip.compress(body[:cut]) + gzip.compress(body[cut:]), {**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert len(daemon.wait_for_trace(trace_id.hex(), 6)) == 6


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/traces", {"filter": "!" * 3990 + "ok"}, "nests deeper"),
        ("/api/traces", {"filter": "!(" * 999 + "ok" + ")" * 999}, "nests deeper"),
        ("/api/traces", {"filter": "duration > 1e400"}, "out of range"),
        ("/api/traces", {"filter": "responsetime < -1e300"}, "responsetime"),
        ("/api/traces", {"filter": "annotation.x = 1e999"}, "out of range"),
        ("/api/traces", {"start": "inf"}, "start"),
        ("/api/traces", {"start": "1e300"}, "start"),
        ("/api/traces", {"end": "-inf"}, "end"),
        ("/api/traces", {"end": "nan"}, "end"),
        ("/api/traces", {"limit": "0"}, "limit"),
        ("/api/service-map", {"filter": "!" * 500 + "ok"}, "nests deeper"),
        ("/api/analytics", {"step": "1e308"}, "step"),
        ("/api/analytics", {"step": "inf"}, "step"),
        ("/ui/data/analytics", {"step": "inf"}, "step"),
        ("/ui/data/analytics", {"step": "1e308"}, "step"),
        ("/ui/data/traces", {"start": "1e300"}, "start"),
        ("/ui/data/map", {"filter": "!" * 3990 + "ok"}, "nests deeper"),
    ],
)
def test_every_bad_query_answers_400_naming_the_parameter(
    daemon: Daemon, path: str, params: dict[str, str], named: str
) -> None:
    response = daemon.get(path, **params)
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_spans_with_unbelievable_times_are_refused_alone_and_the_map_goes_on(daemon: Daemon) -> None:
    near_max = 2**63 - 10
    trace_id = bytes.fromhex("d4" * 16)
    hostile = request(
        [
            span(trace_id=trace_id, span_id=b"\x01" * 8, start_ns=near_max, end_ns=near_max + 5),
            span(trace_id=trace_id, span_id=b"\x02" * 8, start_ns=now_ns(), end_ns=now_ns() - 10**9),
            span(trace_id=trace_id, span_id=b"\x03" * 8, start_ns=now_ns()),
        ],
        resource=delimited(1, key_value("service.name", string_value("clock-skewed"))),
    )
    response = post(daemon, hostile, PROTOBUF)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "ahead" in partial.error_message and "end before it starts" in partial.error_message
    assert [s["span_id"] for s in daemon.wait_for_trace(trace_id.hex(), 1)] == ["03" * 8]
    metrics = daemon.get("/metrics").text
    assert 'fluoro_spans_rejected_for_time_total{reason="start or end time is more than an hour ahead' in metrics
    # Linking goes on for everyone else: a later span shows on the map.
    later = request(
        [span(trace_id=bytes.fromhex("d5" * 16), start_ns=now_ns())],
        resource=delimited(1, key_value("service.name", string_value("after-the-attack"))),
    )
    assert post(daemon, later, PROTOBUF).status_code == 200

    def mapped() -> bool:
        nodes = daemon.get("/api/service-map", start=str(time.time() - 300)).json()["nodes"]
        return "after-the-attack" in {n["name"] for n in nodes}

    wait_until(mapped, timeout_s=15, poll_s=0.3)


@pytest.mark.parametrize("port", ["otlp", "ui"])
def test_a_host_name_the_daemon_is_not_known_by_gets_421(daemon: Daemon, port: str) -> None:
    # DNS rebinding: a web page whose name now points at 127.0.0.1 sends its own Host.
    url = daemon.traces_url if port == "otlp" else f"{daemon.api_url}/api/services"
    response = httpx.request(
        "POST" if port == "otlp" else "GET", url, headers={"Host": "rebound.evil.example", **PROTOBUF}, content=b""
    )
    assert response.status_code == 421 and "--allowed-hosts" in response.text
    localhost = url.replace("127.0.0.1", "localhost")
    assert (
        httpx.request("POST" if port == "otlp" else "GET", localhost, headers=PROTOBUF, content=b"").status_code == 200
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(
        tmp_path_factory.mktemp("guarded") / "spans.duckdb",
        token="s3cret",
        extra_args=("--allowed-hosts", "fluoro.test"),
    ).start()
    yield running
    running.stop()


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/api/services", "/metrics"])
def test_with_a_token_the_docs_need_it_too(guarded: Daemon, path: str) -> None:
    assert httpx.get(f"{guarded.api_url}{path}").status_code == 401
    assert guarded.get(path).status_code == 200
    assert httpx.get(f"{guarded.api_url}/healthz").status_code == 200


def test_an_added_host_name_is_served(guarded: Daemon) -> None:
    assert httpx.get(f"{guarded.api_url}/healthz", headers={"Host": "fluoro.test"}).status_code == 200
    assert httpx.get(f"{guarded.api_url}/healthz", headers={"Host": "other.test"}).status_code == 421


def test_the_login_form_is_read_with_a_cap(guarded: Daemon) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(64 * 1024):  # 64 MiB, streamed without a length: refused after 4 KiB
            yield b"token=" + b"x" * 1018

    response = httpx.post(f"{guarded.api_url}/login", content=endless(), timeout=30)
    assert response.status_code == 413
    declared = httpx.post(f"{guarded.api_url}/login", content=b"x" * 5000)
    assert declared.status_code == 413


def test_failed_logins_are_slowed_and_a_good_one_gets_a_session_that_expires(guarded: Daemon) -> None:
    url = f"{guarded.api_url}/login"
    headers = {"X-Forwarded-For": "ignored"}
    statuses = [httpx.post(url, data={"token": "wrong"}, headers=headers).status_code for _ in range(5)]
    assert statuses[:4] == [401, 401, 401, 401] and statuses[4] == 429
    time.sleep(2.1)
    ok = httpx.post(url, data={"token": "s3cret", "next": "/traces"})
    assert ok.status_code == 303 and ok.headers["location"] == "/traces"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Max-Age=43200" in cookie and "samesite=strict" in cookie.lower()
    session = cookie.split(";")[0].split("=", 1)[1]
    assert httpx.get(f"{guarded.api_url}/traces", cookies={"fluoro_session": session}).status_code == 200
    stale = f"{int(time.time()) - 13 * 3600}.{session.split('.')[1]}"
    assert httpx.get(f"{guarded.api_url}/traces", cookies={"fluoro_session": stale}).status_code == 303


def test_a_session_in_use_is_rotated(guarded: Daemon) -> None:
    from ui.web.security import session_value

    twenty_minutes_old = session_value("s3cret", int(time.time()) - 1200)
    response = httpx.get(f"{guarded.api_url}/traces", cookies={"fluoro_session": twenty_minutes_old})
    assert response.status_code == 200
    fresh = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert fresh != twenty_minutes_old and abs(int(fresh.split(".")[0]) - time.time()) < 60
    recent = session_value("s3cret", int(time.time()) - 60)
    assert "set-cookie" not in httpx.get(f"{guarded.api_url}/traces", cookies={"fluoro_session": recent}).headers


def test_services_are_listed_a_bounded_page_at_a_time(daemon: Daemon) -> None:
    resource_spans = [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": f"many-{i:02}"}}]},
            "scopeSpans": [{"spans": [json_span(f"{i + 100:016x}", traceId=f"{i + 1:032x}")]}],
        }
        for i in range(30)
    ]
    assert post(daemon, json.dumps({"resourceSpans": resource_spans}).encode(), JSON).status_code == 200
    page = daemon.get("/api/services", limit="5").json()
    assert len(page["services"]) == 5 and page["total"] >= 30 and page["truncated"] is True
    assert daemon.get("/api/services", limit="100000").status_code == 400
