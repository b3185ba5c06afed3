"""The top hashtags, read from DynamoDB."""

import json
import os

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

TRENDS = boto3.resource("dynamodb").Table(os.environ["TRENDS_TABLE"])


@tracer.traced.handler
def handler(event, context):
    items = TRENDS.scan(Limit=500).get("Items", [])
    top = sorted(items, key=lambda i: -int(i["mentions"]))[:10]
    body = [{"tag": i["tag"], "mentions": int(i["mentions"])} for i in top]
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
