"""Stored spans carrying every awkward value a client can send under the keys Fluoro reads
(NaN and infinities, int64's ends, text that is not what the key means, JSON that is not JSON,
empty lists, nested maps), over OTLP and as X-Ray segments, break no query route and no page:
each answers below 500, and none answers 503 (the store is healthy: a 503 here is a statement
that failed on a value). Found by this sweep before its fix: a consumed-capacity entry that was
not JSON failed every cost report of its window (503), a call without usable capacity units
made one fail with a 500."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.daemon import Daemon

READ_KEYS = (
    "fluoro.origin",
    "faas.max_memory",
    "faas.coldstart",
    "faas.trigger",
    "http.response.status_code",
    "fluoro.sampling.weight",
    "fluoro.sampling",
    "aws.dynamodb.consumed_capacity",
    "messaging.batch.message_count",
    "messaging.message.body.size",
    "fluoro.annotation.customer",
    "host.arch",
    "enduser.id",
    "fluoro.lambda.init_duration_ms",
    "aws.stepfunctions.workflow_type",
    "aws.stepfunctions.state.type",
    "rpc.method",
    "rpc.service",
    "fluoro.target.type",
    "fluoro.apigateway.api_type",
    "http.route",
    "faas.version",
    "error.type",
)
AWKWARD: tuple[dict[str, Any], ...] = (
    {"doubleValue": "NaN"},
    {"doubleValue": "Infinity"},
    {"doubleValue": "-Infinity"},
    {"doubleValue": 1.7e308},
    {"intValue": str(-(2**63))},
    {"intValue": str(2**63 - 1)},
    {"stringValue": ""},
    {"stringValue": "{broken"},
    {"stringValue": "\u0000\"'<script>"},
    {"arrayValue": {"values": []}},
    {"arrayValue": {"values": [{"stringValue": "{broken"}, {"doubleValue": "NaN"}]}},
    {"kvlistValue": {"values": [{"key": "CapacityUnits", "value": {"doubleValue": "NaN"}}]}},
    {"boolValue": True},
)
# Where each key is read: a span of each kind Fluoro bills, maps and derives from, as
# (kind, attributes); the awkward value replaces the span's own under its key.
CONTEXTS: tuple[tuple[int, dict[str, Any]], ...] = (
    (2, {"fluoro.origin": "AWS::Lambda::Function", "faas.trigger": "http"}),
    (2, {"fluoro.origin": "AWS::ApiGateway::Stage", "fluoro.apigateway.api_type": "HTTP"}),
    (2, {"fluoro.origin": "AWS::StepFunctions::StateMachine", "aws.stepfunctions.workflow_type": "EXPRESS"}),
    (1, {"fluoro.origin": "AWS::StepFunctions::StateMachine", "aws.stepfunctions.state.type": "Task"}),
    (
        3,
        {
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": "GetItem",
            "aws.dynamodb.table_names": ["t"],
        },
    ),
    (
        3,
        {"rpc.system": "aws-api", "rpc.service": "SQS", "rpc.method": "SendMessage", "messaging.destination.name": "q"},
    ),
    (
        4,
        {"rpc.system": "aws-api", "rpc.service": "Kinesis", "rpc.method": "PutRecords", "aws.kinesis.stream_name": "s"},
    ),
    (4, {"rpc.system": "aws-api", "rpc.service": "EventBridge", "rpc.method": "PutEvents"}),
)
AN_HOUR_AGO = str(int(time.time()) - 3600)  # epoch seconds, as the API takes a start
SERVICE = 'svc-\u00e9"<b>'


def otlp_value(value: object) -> dict[str, Any]:
    if isinstance(value, list):
        return {"arrayValue": {"values": [otlp_value(item) for item in value]}}
    return {"stringValue": value}


def awkward_spans(now_ns: int) -> list[dict[str, Any]]:
    """A span for each read key, awkward value and context, half of them children of spans that
    never come, each with an exception event carrying the value."""
    spans = []
    cases = itertools.product(READ_KEYS, AWKWARD, CONTEXTS)
    for i, (key, value, (kind, context)) in enumerate(cases, start=1):
        attributes = [{"key": name, "value": otlp_value(own)} for name, own in context.items() if name != key]
        attributes.append({"key": key, "value": value})
        event = {"name": "exception", "timeUnixNano": str(now_ns), "attributes": [{"key": key, "value": value}]}
        spans.append(
            {
                "traceId": f"{i:032x}",
                "spanId": f"{i:016x}",
                "parentSpanId": f"{i + 100_000:016x}" if i % 2 else "",
                "name": f"awkward {key}",
                "kind": kind,
                "startTimeUnixNano": str(now_ns - 10**9 - i * 1000),
                "endTimeUnixNano": str(now_ns - i * 1000),
                "attributes": attributes,
                "status": {"code": i % 3},
                "events": [event],
            }
        )
    return spans


# JSON literals an X-Ray segment may carry where a string or number is expected.
XRAY_AWKWARD = ("1e308", "-0.0", '"{broken"', "[]", "{}", "null", "true", "9223372036854775808", '"\\u0000<b>"')
XRAY_SECOND = 0x5F000000
XRAY_LAST_TRACE = f"{XRAY_SECOND:08x}{len(XRAY_AWKWARD):024x}"


def awkward_segments(now_s: float) -> list[bytes]:
    """An X-Ray daemon datagram for each awkward literal, in every field a segment and its AWS
    subsegment are read for."""
    datagrams = []
    for i, value in enumerate(XRAY_AWKWARD, start=1):
        segment = (
            f'{{"trace_id": "1-{XRAY_SECOND:08x}-{i:024x}", "id": "{i:016x}", "name": "svc-x",'
            f' "start_time": {now_s - 1}, "end_time": {now_s}, "origin": "AWS::Lambda::Function",'
            f' "http": {{"request": {{"method": {value}, "url": {value}}}, "response": {{"status": {value}}}}},'
            f' "annotations": {{"a": {value}}}, "metadata": {{"default": {{"m": {value}}}}}, "user": {value},'
            f' "subsegments": [{{"id": "{i + 1000:016x}", "name": "DynamoDB", "namespace": "aws",'
            f' "start_time": {now_s - 0.5}, "end_time": {now_s - 0.2},'
            f' "aws": {{"operation": {value}, "table_name": {value}, "consumed_capacity": {value}}}}}]}}'
        )
        datagrams.append(b'{"format": "json", "version": 1}\n' + segment.encode())
    return datagrams


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("hostile-values") / "spans.duckdb").start()
    resource = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": SERVICE}},
            {"key": "host.arch", "value": {"stringValue": "arm64"}},
            {"key": "faas.max_memory", "value": {"doubleValue": "NaN"}},
        ]
    }
    spans = awkward_spans(time.time_ns())
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    answer = httpx.post(running.traces_url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    running.wait_for_trace(f"{len(spans):032x}", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for datagram in awkward_segments(time.time()):
            udp.sendto(datagram, ("127.0.0.1", running.xray_port))
    running.wait_for_trace(XRAY_LAST_TRACE, 2)
    yield running
    code, log = running.stop()
    assert code == 0 and "Traceback" not in log, log


def routes(daemon: Daemon) -> list[str]:
    """Every GET route of the query API, its path parameters filled with stored values."""
    document = httpx.get(f"{daemon.api_url}/openapi.json", timeout=10).json()
    filled = {"{trace_id}": f"{3:032x}", "{name}": "g", "{span_id}": f"{3:016x}", "{service}": SERVICE}
    paths = []
    for path, operations in document["paths"].items():
        if "get" in operations:
            for placeholder, value in filled.items():
                path = path.replace(placeholder, value)
            paths.append(path)
    return paths


@pytest.mark.parametrize(
    "params",
    [{}, {"start": AN_HOUR_AGO}, {"group_by": "function"}, {"group_by": "trace"}, {"service": SERVICE}],
    ids=["defaults", "from an hour ago", "by function", "by trace", "a service"],
)
def test_awkward_stored_values_break_no_query_route(daemon: Daemon, params: dict[str, str]) -> None:
    failed = []
    for path in routes(daemon):
        answer = httpx.get(f"{daemon.api_url}{path}", params=params, timeout=30)
        if answer.status_code >= 500:
            failed.append((path, answer.status_code, answer.text[:200]))
    assert not failed


# The pages' data (their figures are built from the stored values), and the pages.
UI = (
    "/",
    "/traces",
    "/analytics",
    "/insights",
    "/ui/data/traces",
    f"/ui/data/trace/{3:032x}",
    f"/ui/data/trace/{6:032x}",
    f"/ui/data/trace/{XRAY_LAST_TRACE}",
    f"/api/traces/{XRAY_LAST_TRACE}/cost",
    "/ui/data/analytics",
    f"/ui/data/analytics?node={SERVICE}",
    "/ui/data/map",
    "/ui/data/cost",
    "/ui/data/insights",
    f"/ui/data/compare?a={3:032x}&b={6:032x}",
)


@pytest.mark.parametrize("path", UI)
def test_awkward_stored_values_break_no_page(daemon: Daemon, path: str) -> None:
    answer = httpx.get(f"{daemon.api_url}{path}", timeout=30)
    assert answer.status_code == 200, answer.text[:300]
