"""X-Ray daemon datagrams into span rows."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from collector.model import SpanBatchBuilder
from collector.normalize.xray import BadSegment, SegmentWalker, parse_datagram
from tracer.propagation import xray_trace_id

HEADER = b'{"format": "json", "version": 1}\n'
TRACE = "1-5759e988-bd862e3fe1be46a994272793"


def datagram(document: dict[str, Any]) -> bytes:
    return HEADER + orjson.dumps(document)


def segment() -> dict[str, Any]:
    return {
        "name": "orders",
        "id": "70de5b6f19ff9a0a",
        "trace_id": TRACE,
        "start_time": 1_700_000_000.0,
        "end_time": 1_700_000_000.5,
        "origin": "AWS::Lambda::Function",
        "user": "alice",
        "http": {
            "request": {"method": "POST", "url": "https://api/orders", "user_agent": "curl"},
            "response": {"status": 500},
        },
        "fault": True,
        "annotations": {"customer": "c1", "total": 12.5, "vip": False},
        "metadata": {"default": {"order": {"id": 7}}},
        "cause": {"exceptions": [{"type": "KeyError", "message": "sku", "stack": [{"path": "a.py", "line": 3}]}]},
        "subsegments": [
            {
                "name": "Initialization",
                "id": "1111111111111111",
                "start_time": 1_699_999_999.0,
                "end_time": 1_700_000_000.0,
            },
            {
                "name": "DynamoDB",
                "id": "2222222222222222",
                "namespace": "aws",
                "start_time": 1_700_000_000.1,
                "end_time": 1_700_000_000.2,
                "throttle": True,
                "error": True,
                "aws": {"operation": "UpdateItem", "table_name": "accounts"},
                "http": {"response": {"status": 400}},
                "subsegments": [
                    {
                        "name": "retry",
                        "id": "3333333333333333",
                        "start_time": 1_700_000_000.15,
                        "end_time": 1_700_000_000.16,
                    },
                ],
            },
            {
                "name": "api.stripe.com",
                "id": "4444444444444444",
                "namespace": "remote",
                "start_time": 1_700_000_000.3,
                "end_time": 1_700_000_000.4,
            },
        ],
    }


def walk(*documents: dict[str, Any]) -> dict[str, dict[str, Any]]:
    builder = SpanBatchBuilder()
    for document in documents:
        SegmentWalker(builder).add_document(parse_datagram(datagram(document)))
    return {f"{r['span_id']:016x}": r for r in builder.build().spans.to_pylist()}


def test_segment_with_nested_subsegments() -> None:
    spans = walk(segment())
    root, init, dynamo, retry, remote = (
        spans[k]
        for k in ("70de5b6f19ff9a0a", "1111111111111111", "2222222222222222", "3333333333333333", "4444444444444444")
    )
    assert root["trace_id"] == uuid.UUID("5759e988bd862e3fe1be46a994272793")
    assert (root["service"], root["kind"], root["parent_span_id"]) == ("orders", "SERVER", None)
    assert (root["fault"], root["http_status"], root["http_method"], root["user_id"]) == (True, 500, "POST", "alice")
    assert root["cold_start"] is True  # it has an Initialization subsegment
    assert root["duration_ns"] == 500_000_000
    assert orjson.loads(root["events"])[0]["attributes"]["exception.type"] == "KeyError"
    assert init["parent_span_id"] == root["span_id"] and init["service"] == "orders"
    assert (dynamo["kind"], dynamo["target_type"], dynamo["target_name"]) == (
        "CLIENT",
        "AWS::DynamoDB::Table",
        "accounts",
    )
    assert (dynamo["throttle"], dynamo["error"], dynamo["fault"]) == (True, True, False)
    assert retry["parent_span_id"] == dynamo["span_id"]
    assert (remote["target_type"], remote["target_name"]) == ("remote", "api.stripe.com")


def test_xray_ids_match_the_otel_propagator() -> None:
    (root,) = [r for r in walk(segment()).values() if r["parent_span_id"] is None]
    assert xray_trace_id(root["trace_id"].int) == TRACE


def test_in_progress_and_independent_subsegments() -> None:
    in_progress = {
        "name": "slow",
        "id": "5555555555555555",
        "trace_id": TRACE,
        "start_time": 1_700_000_000.0,
        "in_progress": True,
    }
    independent = {
        "type": "subsegment",
        "name": "S3",
        "namespace": "aws",
        "id": "6666666666666666",
        "trace_id": TRACE,
        "parent_id": "70de5b6f19ff9a0a",
        "start_time": 1_700_000_000.0,
        "end_time": 1_700_000_001.0,
        "aws": {"bucket_name": "images"},
    }
    spans = walk(in_progress, independent)
    assert spans["5555555555555555"]["in_progress"] is True
    s3 = spans["6666666666666666"]
    assert (s3["parent_span_id"], s3["service"], s3["target_name"]) == (0x70DE5B6F19FF9A0A, "", "images")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"name": "x"}', "header"),
        (b'{"format": "xml"}\n{}', "header"),
        (HEADER + b"{broken", "JSON"),
        (HEADER + b"[1]", "object"),
        (datagram({**segment(), "trace_id": "1-zz-yy"}), "trace_id"),
        (datagram({**segment(), "id": "short"}), "id"),
        (datagram({**segment(), "start_time": "yesterday"}), "start_time"),
        (datagram({**segment(), "name": ""}), "name"),
        (
            datagram(
                {
                    "type": "subsegment",
                    "name": "x",
                    "id": "1111111111111111",
                    "trace_id": TRACE,
                    "start_time": 1.0,
                    "end_time": 2.0,
                }
            ),
            "parent_id",
        ),
        (HEADER + b"x" * 70_000, "64 KB"),
    ],
)
def test_bad_datagrams_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(BadSegment, match=reason):
        SegmentWalker(SpanBatchBuilder()).add_document(parse_datagram(raw))


def test_hostile_field_types_are_ignored_not_fatal() -> None:
    hostile = {
        **segment(),
        "http": {"request": {"method": {"x": 1}, "url": 5}, "response": {"status": "500"}},
        "origin": ["x"],
        "user": 3,
        "subsegments": ["junk", None],
    }
    (row,) = walk(hostile).values()
    assert (row["http_method"], row["http_url"], row["http_status"], row["origin"], row["user_id"]) == (
        None,
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("name", "aws", "target"),
    [
        ("dynamodb", {"table_name": "notices"}, ("AWS::DynamoDB::Table", "notices")),  # botocore's id, lowercase
        ("events", {}, ("AWS::Events::EventBus", "events")),
        ("stepfunctions", {}, ("AWS::StepFunctions::StateMachine", "stepfunctions")),
        ("SQS", {"queue_url": "http://q/123/jobs"}, ("AWS::SQS::Queue", "jobs")),
    ],
)
def test_aws_subsegments_name_their_node_whatever_the_sdk_calls_the_service(
    name: str, aws: dict[str, Any], target: tuple[str, str]
) -> None:
    document = segment()
    document["subsegments"] = [
        {
            "name": name,
            "id": "5555555555555555",
            "namespace": "aws",
            "start_time": 1.7e9,
            "end_time": 1.7e9 + 0.1,
            "aws": aws,
        }
    ]
    child = walk(document)["5555555555555555"]
    assert (child["target_type"], child["target_name"]) == target
