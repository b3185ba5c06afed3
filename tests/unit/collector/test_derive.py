"""derive.py: one meaning of a span, whichever decoder read it (C and Python OTLP, X-Ray)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, cast

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.model import SpanBatchBuilder
from collector.normalize import otlp_proto
from collector.normalize.otlp_proto import decode_protobuf, decode_protobuf_python
from collector.normalize.xray import SegmentWalker, parse_datagram
from spanlang import derive
from tests.factories import otlp_value

TRACE = bytes.fromhex("5759e988bd862e3fe1be46a994272793")
START_NS = 1_700_000_000_000_000_000
KINDS = {
    "INTERNAL": Span.SPAN_KIND_INTERNAL,
    "SERVER": Span.SPAN_KIND_SERVER,
    "CLIENT": Span.SPAN_KIND_CLIENT,
    "PRODUCER": Span.SPAN_KIND_PRODUCER,
}


def request(
    attributes: dict[str, Any],
    *,
    kind: str = "CLIENT",
    status_code: int = 0,
    exception: bool = False,
    resource: dict[str, Any] | None = None,
) -> bytes:
    return spans_request([span_message(attributes, kind=kind, status_code=status_code, exception=exception)], resource)


def span_message(
    attributes: dict[str, Any], *, kind: str = "CLIENT", status_code: int = 0, exception: bool = False, span_id: int = 7
) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=span_id.to_bytes(8, "big"),
        name="op",
        kind=KINDS[kind],
        start_time_unix_nano=START_NS,
        end_time_unix_nano=START_NS + 1000,
        attributes=[KeyValue(key=k, value=otlp_value(v)) for k, v in attributes.items()],
        status=Status(code=cast("Status.StatusCode.ValueType", status_code)),
        events=[Span.Event(name="exception", time_unix_nano=START_NS)] if exception else [],
    )


def spans_request(spans: list[Span], resource: dict[str, Any] | None = None) -> bytes:
    resource_attributes = [KeyValue(key=k, value=otlp_value(v)) for k, v in (resource or {}).items()]
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=Resource(attributes=resource_attributes), scope_spans=[ScopeSpans(spans=spans)])
        ]
    )
    body: bytes = request.SerializeToString()
    return body


def derived(body: bytes) -> dict[str, Any]:
    """The one row, by the C decoder and by the Python path, which must agree."""
    assert otlp_proto._otlpfast is None or otlp_proto._otlpfast.decode(body) is not None, "the C decoder deferred it"
    fast, reference = decode_protobuf(body), decode_protobuf_python(body)
    assert fast.spans.to_pylist() == reference.spans.to_pylist()
    assert fast.annotations.to_pylist() == reference.annotations.to_pylist()
    row: dict[str, Any]
    (row,) = fast.spans.to_pylist()
    row["annotations"] = {
        a["key"]: a["str_value"] or a["num_value"] or a["bool_value"] for a in fast.annotations.to_pylist()
    }
    return row


DDB = {"rpc.system": "aws-api", "rpc.service": "dynamodb", "aws.dynamodb.table_names": ["accounts"]}
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (span arguments, what derive must make of them)
    "4xx is an error": ({"attributes": {"http.response.status_code": 404}}, {"error": True, "fault": False}),
    "429 is an error and a throttle": (
        {"attributes": {"http.response.status_code": 429}},
        {"error": True, "throttle": True, "fault": False},
    ),
    "5xx as text in the old key is a fault": (
        {"attributes": {"http.status_code": "503"}},
        {"http_status": 503, "fault": True},
    ),
    "the new status key wins even when empty": (
        {"attributes": {"http.response.status_code": None, "http.status_code": 500}},
        {"http_status": None, "fault": False},
    ),
    "a digit that is not ASCII is no status": ({"attributes": {"http.status_code": "²"}}, {"http_status": None}),
    "ERROR on a server span is a fault": ({"kind": "SERVER", "status_code": 2, "attributes": {}}, {"fault": True}),
    "ERROR explained by a 4xx is no fault": (
        {"status_code": 2, "attributes": {"http.response.status_code": 409}},
        {"error": True, "fault": False},
    ),
    "ERROR on an internal span after an exception is a fault": (
        {"kind": "INTERNAL", "status_code": 2, "exception": True, "attributes": {"http.response.status_code": 200}},
        {"fault": True},
    ),
    "fluoro flags win": (
        {"attributes": {"fluoro.throttle": True, "fluoro.error": 1}},
        {"throttle": True, "error": True},
    ),
    "botocore's lowercase service id": (
        {"attributes": DDB},
        {"target_type": "AWS::DynamoDB::Table", "target_name": "accounts"},
    ),
    "a queue named by its URL's last part": (
        {"attributes": {"rpc.system": "aws-api", "rpc.service": "SQS", "aws.sqs.queue_url": "https://sqs/1/orders/"}},
        {"target_type": "AWS::SQS::Queue", "target_name": "orders"},
    ),
    "an AWS service without a table falls back to its name": (
        {"attributes": {"rpc.system": "aws-api", "rpc.service": "Glue"}},
        {"target_type": "AWS::Glue", "target_name": "Glue"},
    ),
    "a database by namespace": (
        {"attributes": {"db.system": "postgresql", "db.name": "old", "db.namespace": "ledger"}},
        {"target_type": "database", "target_name": "ledger"},
    ),
    "a queue by destination": (
        {"kind": "PRODUCER", "attributes": {"messaging.system": "kafka", "messaging.destination.name": "t"}},
        {"target_type": "queue", "target_name": "t"},
    ),
    "a remote host is named without its port": (
        {"attributes": {"server.address": "api.stripe.com", "server.port": 443}},
        {"target_type": "remote", "target_name": "api.stripe.com"},
    ),
    "an old-convention host is named without its port": (
        {"attributes": {"net.peer.name": "db.local", "net.peer.port": "5432"}},
        {"target_type": "remote", "target_name": "db.local"},
    ),
    "peer.service beats the address": (
        {"attributes": {"peer.service": "ledger", "server.address": "10.0.0.1"}},
        {"target_type": "service", "target_name": "ledger"},
    ),
    "a server span calls nothing": ({"kind": "SERVER", "attributes": DDB}, {"target_type": None, "target_name": None}),
    "fluoro's explicit target on any span": (
        {"kind": "INTERNAL", "attributes": {"fluoro.target.type": "AWS::SNS::Topic", "fluoro.target.name": "alerts"}},
        {"target_type": "AWS::SNS::Topic", "target_name": "alerts"},
    ),
    "a FaaS invocation's origin": ({"attributes": {"faas.trigger": "http"}}, {"origin": "AWS::Lambda::Function"}),
    "method, url and agent by their older names": (
        {"attributes": {"http.method": "PUT", "http.url": "https://x/y", "http.user_agent": "curl"}},
        {"http_method": "PUT", "http_url": "https://x/y", "http_user_agent": "curl"},
    ),
    "a cold start is a bool only": ({"attributes": {"faas.coldstart": 1}}, {"cold_start": None}),
    "a head-sampled span's weight": (
        {"attributes": {"fluoro.sampling": "head", "fluoro.sampling.weight": 100.0}},
        {"sampling_weight": 100.0},
    ),
    "a tail-kept span stands for no other request": (
        {"attributes": {"fluoro.sampling": "tail:throttle", "fluoro.sampling.weight": 20.0}},
        {"sampling_weight": 0.0},
    ),
    "an unsampled-looking weight is ignored": (
        {"attributes": {"fluoro.sampling.weight": 0.25}},
        {"sampling_weight": None},
    ),
    "service and version from the resource, capped": (
        {"attributes": {}, "resource": {"service.name": "s" * 300, "faas.version": "", "service.version": "v2"}},
        {"service": "s" * 200, "function_version": "v2"},
    ),
    "the span's version beats the resource's": (
        {"attributes": {"faas.version": "$LATEST"}, "resource": {"faas.version": "3"}},
        {"function_version": "$LATEST", "service": "unknown_service"},
    ),
    "annotations by prefix, typed": (
        {
            "attributes": {
                "fluoro.annotation.customer": "c1",
                "fluoro.annotation.total": 3,
                "fluoro.annotation.vip": True,
            }
        },
        {"annotations": {"customer": "c1", "total": 3.0, "vip": True}},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_derivation_rules_on_both_decoders(name: str) -> None:
    arguments, expected = CASES[name]
    row = derived(request(**arguments))
    assert {key: row[key] for key in expected} == expected


def xray_row(document: dict[str, Any]) -> dict[str, Any]:
    builder = SpanBatchBuilder()
    SegmentWalker(builder).add_document(parse_datagram(b'{"format":"json","version":1}\n' + orjson.dumps(document)))
    return {row["name"]: row for row in builder.build().spans.to_pylist()}


MEANING = (
    "error",
    "fault",
    "throttle",
    "http_status",
    "target_type",
    "target_name",
    "origin",
    "user_id",
    "http_method",
)


def test_an_xray_subsegment_means_what_the_same_otlp_span_means() -> None:
    xray = xray_row(
        {
            "name": "orders",
            "id": "70de5b6f19ff9a0a",
            "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "start_time": 1_700_000_000.0,
            "end_time": 1_700_000_000.5,
            "subsegments": [
                {
                    "name": "SQS",
                    "id": "2222222222222222",
                    "namespace": "aws",
                    "start_time": 1_700_000_000.1,
                    "end_time": 1_700_000_000.2,
                    "throttle": True,
                    "error": True,
                    "aws": {"queue_url": "https://sqs.us-east-1.amazonaws.com/1/jobs"},
                    "http": {"response": {"status": 429}},
                }
            ],
        }
    )["SQS"]
    otlp = derived(
        request(
            {
                "rpc.system": "aws-api",
                "rpc.service": "SQS",
                "aws.sqs.queue_url": "https://sqs.us-east-1.amazonaws.com/1/jobs",
                "http.response.status_code": 429,
            },
            status_code=2,
        )
    )
    assert {k: xray[k] for k in MEANING} == {k: otlp[k] for k in MEANING}
    assert (xray["target_type"], xray["target_name"], xray["throttle"]) == ("AWS::SQS::Queue", "jobs", True)


def test_an_xray_segment_with_a_4xx_is_an_error_as_an_otlp_server_span_is() -> None:
    segment = xray_row(
        {
            "name": "api",
            "id": "70de5b6f19ff9a0a",
            "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "start_time": 1_700_000_000.0,
            "end_time": 1_700_000_000.5,
            "http": {"request": {"method": "GET"}, "response": {"status": 404}},
        }
    )["api"]
    otlp = derived(request({"http.request.method": "GET", "http.response.status_code": 404}, kind="SERVER"))
    assert {k: segment[k] for k in MEANING} == {k: otlp[k] for k in MEANING}
    assert segment["error"] is True


def test_spans_that_share_a_signature_keep_their_own_texts() -> None:
    # The C decoder asks derive.py once for both (same kind, status, fact types): the texts the
    # rules only copy are each span's own.
    spans = [
        span_message(
            {**DDB, "aws.dynamodb.table_names": [table], "url.path": f"/{table}", "enduser.id": user}, span_id=i
        )
        for i, (table, user) in enumerate([("accounts", "ann"), ("ledger", "bob")], start=1)
    ]
    body = spans_request(spans)
    fast = decode_protobuf(body).spans.to_pylist()
    assert fast == decode_protobuf_python(body).spans.to_pylist()
    assert [(r["target_name"], r["http_url"], r["user_id"]) for r in fast] == [
        ("accounts", "/accounts", "ann"),
        ("ledger", "/ledger", "bob"),
    ]


def test_a_flood_of_distinct_signatures_decodes_as_the_python_path_does() -> None:
    # more distinct signatures than the C decoder's cache keeps, and one too long to keep
    spans = [
        span_message(
            {"rpc.system": "aws-api", "rpc.service": f"Svc{i}", "http.status_code": str(200 + i % 400)}, span_id=i
        )
        for i in range(1, 4_500)
    ]
    spans.append(span_message({"rpc.system": "aws-api", "rpc.service": "h" * 3_000}, span_id=9_999))
    body = spans_request(spans)
    for _ in range(2):  # the second time, from whatever the cache kept
        assert decode_protobuf(body).spans.to_pylist() == decode_protobuf_python(body).spans.to_pylist()


READS_AN_UNLISTED_TEXT = """
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collector.normalize import _otlpfast  # not otlp_proto: that configures it with derive.py's rules
from spanlang.derive import resource_meaning

def meaning(attributes, kind, status_code, has_exception, version):
    return (attributes["url.path"] + "!",) + (None,) * 4 + (False,) * 3 + (None,) * 7

span = Span(trace_id=b"t" * 16, span_id=b"s" * 8, name="op", start_time_unix_nano=1, end_time_unix_nano=2,
            attributes=[KeyValue(key="url.path", value=AnyValue(string_value="/a"))])
body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
_otlpfast.configure(("url.path",), (), "fluoro.annotation.", "aws.xray.annotations", meaning, resource_meaning)
print(_otlpfast.decode(body.SerializeToString()) is None)
"""


@pytest.mark.skipif(
    not otlp_proto.FAST_DECODER_AVAILABLE, reason="the C decoder is not built (test_fuzzers fails then)"
)
def test_a_rule_that_reads_a_text_it_does_not_list_is_caught() -> None:
    done = subprocess.run([sys.executable, "-c", READS_AN_UNLISTED_TEXT], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr  # left to the Python path, where the rule reads the real text
    assert "TEXT_READ_KEYS" in done.stderr


@pytest.mark.parametrize(
    ("attributes", "weight"),
    [
        ({}, None),
        ({"fluoro.sampling": "head"}, None),
        ({"fluoro.sampling": "head", "fluoro.sampling.weight": 100.0}, 100.0),
        ({"fluoro.sampling.weight": 20}, 20.0),
        ({"fluoro.sampling": "tail:error", "fluoro.sampling.weight": 100.0}, 0.0),  # stands for no other request
        ({"fluoro.sampling": "TAIL:error"}, None),
        ({"fluoro.sampling.weight": 0.5}, None),  # a probability above one: not a weight
        ({"fluoro.sampling.weight": float("nan")}, None),
        ({"fluoro.sampling.weight": float("inf")}, None),
        ({"fluoro.sampling.weight": -3.0}, None),
        ({"fluoro.sampling.weight": 2.0**21}, None),  # past a probability of 2^-20
        ({"fluoro.sampling.weight": True}, None),
        ({"fluoro.sampling.weight": "100"}, None),
        ({"fluoro.sampling": ["tail:error"]}, None),
    ],
)
def test_the_sampling_weight_a_span_states(attributes: dict[str, object], weight: float | None) -> None:
    assert derive.sampling_weight_of(attributes) == weight
