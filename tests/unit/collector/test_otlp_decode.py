"""OTLP protobuf and JSON into span rows, with the X-Ray notions derived."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from collector.model import SpanBatch
from collector.normalize.otlp_json import decode_json
from collector.normalize.otlp_proto import UndecodableBody, decode_protobuf
from collector.receivers.otlp_intake import JSON, PROTOBUF, TRACES, decode_logged_request, logged_request
from tests.conftest import Recorder
from tracer import semconv
from tracer.otlp_encoder import OtlpEncoder

TRACE = "5759E988BD862E3FE1BE46A994272793"
SPAN = "53995C3F42CD8AD8"
PARENT = "0102030405060708"


def rows(batch: SpanBatch) -> list[dict[str, Any]]:
    return batch.spans.to_pylist()  # type: ignore[no-any-return]


def test_protobuf_from_the_tracer(recorder: Recorder) -> None:
    spans = recorder.tracing.spans
    root = spans.start("GET /orders", attributes={semconv.HTTP_RESPONSE_STATUS_CODE: 503, semconv.FAAS_COLDSTART: True})
    root.set_attribute(semconv.ANNOTATION_PREFIX + "customer", "c1")
    root.set_attribute(semconv.ANNOTATION_PREFIX + "amount", 12)
    root.end()
    recorded = recorder.spans()
    batch = decode_protobuf(OtlpEncoder().encode(recorded))
    (row,) = rows(batch)
    assert row["trace_id"] == uuid.UUID(int=recorded[0].context.trace_id)
    assert row["span_id"] == recorded[0].context.span_id
    assert row["parent_span_id"] is None
    assert row["service"] == "test-service" and row["name"] == "GET /orders" and row["kind"] == "INTERNAL"
    assert (row["fault"], row["error"], row["throttle"], row["cold_start"]) == (True, False, False, True)
    assert row["http_status"] == 503
    assert row["source"] == "otlp"
    annotations = {a["key"]: a for a in batch.annotations.to_pylist()}
    assert annotations["customer"]["str_value"] == "c1"
    assert annotations["amount"]["num_value"] == 12.0


def test_garbage_and_truncated_protobuf_are_undecodable(recorder: Recorder) -> None:
    span = recorder.tracing.spans.start("x")
    span.end()
    body = OtlpEncoder().encode(recorder.spans())
    with pytest.raises(UndecodableBody, match="protobuf"):
        decode_protobuf(body[:-7])
    with pytest.raises(UndecodableBody):
        decode_protobuf(b"\xff\xff\xff\xff garbage")


def json_request(spans: list[dict[str, Any]], service: str = "payments") -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"scope": {"name": "hand"}, "spans": spans, "unknownField": 1}],
                    "schemaUrl": "x",
                }
            ],
            "someFutureField": {"ignored": True},
        }
    )


def json_span(**overrides: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": SPAN,
        "parentSpanId": PARENT,
        "name": "charge",
        "kind": 3,
        "startTimeUnixNano": 1_700_000_000_000_000_000,
        "endTimeUnixNano": "1700000000250000000",
        "attributes": [
            {"key": "rpc.system", "value": {"stringValue": "aws-api"}},
            {"key": "rpc.service", "value": {"stringValue": "DynamoDB"}},
            {"key": "aws.dynamodb.table_names", "value": {"arrayValue": {"values": [{"stringValue": "accounts"}]}}},
            {"key": "http.status_code", "value": {"intValue": "400"}},
            {"key": "retries", "value": {"intValue": 2}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "ok", "value": {"boolValue": True}},
        ],
        "events": [{"name": "retry", "timeUnixNano": "1700000000100000000", "attributes": []}],
        "links": [{"traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "B7AD6B7169203331"}],
        "status": {"code": 2, "message": "throttled"},
    }
    span.update(overrides)
    return span


def test_json_by_hand_uppercase_ids_int64_numbers_and_strings() -> None:
    batch = decode_json(json_request([json_span()]))
    (row,) = rows(batch)
    assert row["trace_id"] == uuid.UUID(TRACE.lower())
    assert row["span_id"] == int(SPAN, 16) and row["parent_span_id"] == int(PARENT, 16)
    assert row["duration_ns"] == 250_000_000
    assert (row["kind"], row["status_code"], row["status_message"]) == ("CLIENT", 2, "throttled")
    assert (row["target_type"], row["target_name"]) == ("AWS::DynamoDB::Table", "accounts")
    assert (row["error"], row["fault"]) == (True, False)  # a 400 explains the ERROR status
    attributes = orjson.loads(row["attributes"])
    assert attributes["retries"] == 2 and attributes["ratio"] == 0.5 and attributes["ok"] is True
    (link,) = batch.links.to_pylist()
    assert link["linked_trace_id"] == uuid.UUID("0af7651916cd43dd8448eb211c80319c")
    assert orjson.loads(row["events"])[0]["name"] == "retry"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"traceId": "00000000000000000000000000000000"}, "trace_id"),
        ({"traceId": "abc"}, "traceId"),
        ({"spanId": "zzzzzzzzzzzzzzzz"}, "spanId"),
        ({"startTimeUnixNano": "soon"}, "startTimeUnixNano"),
        ({"endTimeUnixNano": str(2**70)}, "int64"),
    ],
)
def test_invalid_json_spans_are_rejected_with_a_reason(override: dict[str, Any], reason: str) -> None:
    batch = decode_json(json_request([json_span(), json_span(**{"spanId": "1111111111111111", **override})]))
    assert batch.span_count == 1
    assert batch.rejected == 1
    assert reason in batch.rejection_reason


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b'{"resourceSpans": [1]}'])
def test_undecodable_json(body: bytes) -> None:
    with pytest.raises(UndecodableBody):
        decode_json(body)


def test_flags_derived_for_other_sdks() -> None:
    server_error = json_span(kind=2, attributes=[], status={"code": 2})
    exception = json_span(
        spanId="2222222222222222",
        kind=1,
        attributes=[],
        status={"code": 2},
        events=[{"name": "exception", "timeUnixNano": 1, "attributes": []}],
    )
    throttled = json_span(
        spanId="3333333333333333",
        kind=2,
        attributes=[{"key": "http.response.status_code", "value": {"intValue": 429}}],
        status={},
    )
    external = json_span(
        spanId="4444444444444444",
        kind=3,
        status={},
        attributes=[
            {"key": "server.address", "value": {"stringValue": "api.stripe.com"}},
            {"key": "server.port", "value": {"intValue": 443}},
        ],
    )
    result = {r["span_id"]: r for r in rows(decode_json(json_request([server_error, exception, throttled, external])))}
    assert result[int(SPAN, 16)]["fault"] is True
    assert result[0x2222222222222222]["fault"] is True
    assert (result[0x3333333333333333]["throttle"], result[0x3333333333333333]["error"]) == (True, True)
    assert (result[0x4444444444444444]["target_type"], result[0x4444444444444444]["target_name"]) == (
        "remote",
        "api.stripe.com",
    )


def test_a_logged_request_decodes_to_the_same_spans_in_either_encoding(recorder: Recorder) -> None:
    recorder.tracing.spans.start("logged").end()
    protobuf = OtlpEncoder().encode(recorder.spans())
    json_body = json_request([json_span()])
    for media, body, decode in ((PROTOBUF, protobuf, decode_protobuf), (JSON, json_body, decode_json)):
        replayed = decode_logged_request(logged_request(TRACES, media, body))
        assert replayed.spans.equals(decode(body).spans)
        assert replayed.links.equals(decode(body).links)
