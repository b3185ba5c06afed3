"""Handlers for the local cloud's event tests: producers through boto3, consumers that record."""

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()


def _log(name: str, item: object) -> None:
    with (Path(os.environ["RECORD_DIR"]) / f"{name}.jsonl").open("a") as out:
        out.write(json.dumps(item) + "\n")


@tracer.traced.handler
def produce(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Send what the event says through boto3, as application code does."""
    kind = event["kind"]
    if kind == "events":
        answer = boto3.client("events").put_events(Entries=event["entries"])
        return {"failed": answer["FailedEntryCount"]}
    if kind == "sqs":
        for body in event["bodies"]:
            boto3.client("sqs").send_message(QueueUrl=event["queue_url"], MessageBody=body)
    elif kind == "kinesis":
        records = [{"Data": json.dumps(r).encode(), "PartitionKey": str(r.get("key", "k"))} for r in event["records"]]
        boto3.client("kinesis").put_records(StreamName=event["stream"], Records=records)
    elif kind == "s3":
        boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=event["body"].encode())
    return {"ok": True}


@tracer.traced.handler
def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _log(context.function_name, event)
    return {"ok": True}


@tracer.traced.handler
def slow_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A batch that takes its time (0.4 s), so a backlog outgrows one poller; records each body."""
    time.sleep(0.4)
    for message in event["Records"]:
        _log(context.function_name, message["body"])
    return {}


@tracer.traced.handler
def sqs_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Report poison messages as failed items; record the good ones."""
    failures = []
    for message in event["Records"]:
        if "poison" in message["body"]:
            failures.append({"itemIdentifier": message["messageId"]})
        else:
            _log(context.function_name, {"body": message["body"], "links": len(event["Records"])})
    return {"batchItemFailures": failures}


@tracer.traced.handler
def kinesis_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fail a batch holding a poison record; record good batches in the order they succeed."""
    items = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    _log(context.function_name + "-attempts", [item["n"] for item in items])
    if any(item.get("poison") for item in items):
        raise ValueError("a poison record")
    for item in items:
        _log(context.function_name, item["n"])
    return {"ok": True}
