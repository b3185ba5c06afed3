"""AWS SDK hooks: targets, flags and trace context on async hops (boto3 against moto)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from opentelemetry.trace import SpanKind, TraceFlags

from tests.conftest import Recorder
from tests.recorded import attributes_of
from tracer import semconv
from tracer.aws import aws_target, inject_into_messages, instrument_aws, uninstrument_aws
from tracer.events import message_carriers
from tracer.propagation import xray_header


@pytest.fixture
def aws(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    instrument_aws(recorder.tracing)
    with mock_aws():
        yield recorder
    uninstrument_aws()


def client_span(recorder: Recorder, operation: str) -> Any:
    matches = [s for s in recorder.spans() if attributes_of(s).get(semconv.RPC_METHOD) == operation]
    assert matches, f"no span for {operation}: {[s.name for s in recorder.spans()]}"
    return matches[-1]


@pytest.mark.parametrize(
    ("service", "params", "target"),
    [
        ("dynamodb", {"TableName": "accounts"}, ("AWS::DynamoDB::Table", "accounts")),
        ("dynamodb", {"RequestItems": {"ledger": []}}, ("AWS::DynamoDB::Table", "ledger")),
        ("s3", {"Bucket": "images", "Key": "a.png"}, ("AWS::S3::Bucket", "images")),
        ("sqs", {"QueueUrl": "http://h/123/overdrafts"}, ("AWS::SQS::Queue", "overdrafts")),
        ("kinesis", {"StreamARN": "arn:aws:kinesis:r:1:stream/posts"}, ("AWS::Kinesis::Stream", "posts")),
        ("lambda", {"FunctionName": "arn:aws:lambda:r:1:function:resize:prod"}, ("AWS::Lambda::Function", "resize")),
        ("lambda", {"FunctionName": "notify:live"}, ("AWS::Lambda::Function", "notify")),
        ("events", {"Entries": [{"EventBusName": "bank"}]}, ("AWS::Events::EventBus", "bank")),
        ("events", {"Entries": [{}]}, ("AWS::Events::EventBus", "default")),
        (
            "stepfunctions",
            {"stateMachineArn": "arn:aws:states:r:1:stateMachine:fees"},
            ("AWS::StepFunctions::StateMachine", "fees"),
        ),
        ("sns", {"TopicArn": "arn:aws:sns:r:1:alerts"}, ("AWS::SNS::Topic", "alerts")),
        ("sts", {}, None),
    ],
)
def test_targets(service: str, params: dict[str, Any], target: tuple[str, str] | None) -> None:
    assert aws_target(service, params) == target


def test_dynamodb_call_has_its_table_as_target(aws: Recorder) -> None:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="accounts",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="accounts", Item={"id": {"S": "a1"}})
    span = client_span(aws, "PutItem")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes[semconv.TARGET_TYPE] == "AWS::DynamoDB::Table"
    assert span.attributes[semconv.TARGET_NAME] == "accounts"
    assert span.attributes[semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    assert not span.attributes.get(semconv.ERROR)


def test_throttling_error_marks_throttle(aws: Recorder) -> None:
    dynamodb = boto3.client("dynamodb")
    with Stubber(dynamodb) as stub:
        stub.add_client_error(
            "put_item", service_error_code="ProvisionedThroughputExceededException", http_status_code=400
        )
        with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException):
            dynamodb.put_item(TableName="accounts", Item={"id": {"S": "a1"}})
    span = client_span(aws, "PutItem")
    assert span.attributes[semconv.THROTTLE] is True
    assert span.attributes[semconv.ERROR] is True
    assert not span.attributes.get(semconv.FAULT)


def test_sqs_message_carries_the_producer_span(aws: Recorder) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="overdrafts")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
    (message,) = received["Messages"]
    producer = client_span(aws, "SendMessage")
    assert message["Attributes"]["AWSTraceHeader"] == xray_header(producer.context)
    assert producer.attributes[semconv.TARGET_NAME] == "overdrafts"


def test_sqs_batch_entries_each_get_the_header(recorder: Recorder) -> None:
    # moto drops MessageSystemAttributes on SendMessageBatch, so this checks the request itself.
    span = recorder.tracing.spans.start("batch", kind=SpanKind.PRODUCER)
    params: dict[str, Any] = {
        "QueueUrl": "q",
        "Entries": [{"Id": "1", "MessageBody": "a"}, {"Id": "2", "MessageBody": "b"}],
    }
    inject_into_messages(span, "sqs", "SendMessageBatch", params)
    span.end()
    header = xray_header(span.get_span_context())
    assert [e["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] for e in params["Entries"]] == [header] * 2


def test_kinesis_json_records_carry_the_producer_span(aws: Recorder) -> None:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="posts", ShardCount=1)
    kinesis.put_record(StreamName="posts", Data=json.dumps({"text": "hi"}).encode(), PartitionKey="p")
    kinesis.put_record(StreamName="posts", Data=b"\x00binary", PartitionKey="p")
    shard = kinesis.describe_stream(StreamName="posts")["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="posts", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert records[1]["Data"] == b"\x00binary"  # non-JSON payloads are never touched
    event = {
        "Records": [
            {"eventSource": "aws:kinesis", "kinesis": {"data": base64.b64encode(r["Data"]).decode()}} for r in records
        ]
    }
    (carrier,) = message_carriers(event)
    producer = next(s for s in aws.spans() if attributes_of(s).get(semconv.RPC_METHOD) == "PutRecord")
    assert carrier["traceparent"].split("-")[2] == f"{producer.context.span_id:016x}"
    assert json.loads(records[0]["Data"])["text"] == "hi"


def test_eventbridge_entries_get_a_trace_header(recorder: Recorder) -> None:
    span = recorder.tracing.spans.start("put", kind=SpanKind.PRODUCER)
    params: dict[str, Any] = {"Entries": [{"Source": "bank", "DetailType": "Overdraft", "Detail": "{}"}]}
    inject_into_messages(span, "events", "PutEvents", params)
    span.end()
    assert params["Entries"][0]["TraceHeader"] == xray_header(span.get_span_context())
    assert span.get_span_context().trace_flags == TraceFlags(TraceFlags.SAMPLED)


def test_in_lambda_the_call_span_replaces_the_recursion_detection_header(
    aws: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore copies _X_AMZN_TRACE_ID onto every request in Lambda; S3 would pass that on with an
    # event notification, naming the whole invocation instead of the upload.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "upload")
    monkeypatch.setenv(
        semconv.LAMBDA_TRACE_ENV, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    )
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="pics")
    sent: list[str] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers["X-Amzn-Trace-Id"])
    )
    s3.put_object(Bucket="pics", Key="a.png", Body=b"png")
    span = client_span(aws, "PutObject")
    (header,) = sent
    assert f"Parent={span.context.span_id:016x}" in str(header) and "53995c3f42cd8ad8" not in str(header)
