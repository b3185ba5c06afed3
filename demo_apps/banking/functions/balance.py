"""The balance GET behind the stage cache: a DynamoDB read."""

import json
import os

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

ACCOUNTS = boto3.resource("dynamodb").Table(os.environ["ACCOUNTS_TABLE"])


@tracer.traced.handler
def handler(event, context):
    account = (event.get("pathParameters") or {}).get("id", "")
    item = ACCOUNTS.get_item(ReturnConsumedCapacity="TOTAL", Key={"account_id": account}).get("Item")
    if item is None:
        return {"statusCode": 404, "body": json.dumps({"message": f"no account {account}"})}
    body = {"account": account, "balance": float(item["balance"]), "frozen": bool(item.get("frozen", False))}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
