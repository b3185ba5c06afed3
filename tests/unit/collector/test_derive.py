"""derive.py: one meaning of a span, whichever decoder read it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.normalize import otlp_proto
from collector.normalize.decoded import FACT_KEYS, DecodedBuilder, DecodedRow
from collector.normalize.derive import derive
from collector.normalize.otlp_proto import decode_protobuf, decode_protobuf_python
from collector.normalize.xray import SegmentWalker, parse_datagram

TRACE = bytes.fromhex("5759e988bd862e3fe1be46a994272793")
START_NS = 1_700_000_000_000_000_000
KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4}


def any_value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def request(
    attributes: dict[str, Any],
    *,
    kind: str = "CLIENT",
    status_code: int = 0,
    exception: bool = False,
    resource: dict[str, Any] | None = None,
) -> bytes:
    span = Span(
        trace_id=TRACE,
        span_id=(7).to_bytes(8, "big"),
        name="op",
        kind=KINDS[kind],
        start_time_unix_nano=START_NS,
        end_time_unix_nano=START_NS + 1000,
        attributes=[KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()],
        status=Status(code=status_code),
        events=[Span.Event(name="exception", time_unix_nano=START_NS)] if exception else [],
    )
    resource_attributes = [KeyValue(key=k, value=any_value(v)) for k, v in (resource or {}).items()]
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=Resource(attributes=resource_attributes), scope_spans=[ScopeSpans(spans=[span])])
        ]
    ).SerializeToString()


def derived(body: bytes) -> dict[str, Any]:
    """The one row, by the C decoder and by the Python path, which must agree."""
    fast, reference = decode_protobuf(body), decode_protobuf_python(body)
    assert fast.spans.to_pylist() == reference.spans.to_pylist()
    assert fast.annotations.to_pylist() == reference.annotations.to_pylist()
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
    "a remote host with an integer port": (
        {"attributes": {"server.address": "api.stripe.com", "server.port": 443}},
        {"target_type": "remote", "target_name": "api.stripe.com:443"},
    ),
    "a remote host with a text port keeps no port": (
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
    builder = DecodedBuilder("xray")
    SegmentWalker(builder).add_document(parse_datagram(b'{"format":"json","version":1}\n' + orjson.dumps(document)))
    return {row["name"]: row for row in derive(builder.build()).spans.to_pylist()}


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


def test_an_empty_batch_derives_to_empty_tables() -> None:
    batch = derive(DecodedBuilder("otlp").build())
    assert (batch.spans.num_rows, batch.annotations.num_rows, batch.links.num_rows) == (0, 0, 0)


def test_a_span_of_no_resource_belongs_to_no_service() -> None:
    builder = DecodedBuilder("xray")
    row = DecodedRow(TRACE, 1, None, None, "sub", "CLIENT", START_NS, 5, 0, None, False, False, "xray", None, None)
    builder.add_span(row, {})
    (span,) = derive(builder.build()).spans.to_pylist()
    assert (span["service"], span["resource"]) == ("", None)


@pytest.mark.skipif(not otlp_proto.FAST_DECODER_AVAILABLE, reason="the C decoder is not built")
def test_the_c_decoder_reads_the_same_fact_keys() -> None:
    assert otlp_proto._otlpfast.fact_keys() == FACT_KEYS
