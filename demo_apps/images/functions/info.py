"""Image metadata for the API — instrumented with the AWS X-Ray SDK, unchanged, as code written
before OpenTelemetry is: its subsegments land in the same traces as everything else."""

import json
import os

import boto3
from aws_xray_sdk.core import patch, xray_recorder

patch(["boto3"])
METADATA = boto3.resource("dynamodb").Table(os.environ["METADATA_TABLE"])


@xray_recorder.capture("lookup")
def lookup(name):
    xray_recorder.current_subsegment().put_annotation("image", name)
    return METADATA.get_item(ReturnConsumedCapacity="TOTAL", Key={"image": name}).get("Item")


def handler(event, context):
    name = (event.get("pathParameters") or {}).get("name", "")
    item = lookup(name)
    if item is None:
        return {"statusCode": 404, "body": json.dumps({"message": f"no image {name}"})}
    body = {k: (int(v) if k in ("width", "height") else v) for k, v in item.items()}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
