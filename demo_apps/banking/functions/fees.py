"""The overdraft workflow's steps: assess the fee, apply it, or freeze the account."""

import os
import random
from decimal import Decimal

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

ACCOUNTS = boto3.resource("dynamodb").Table(os.environ["ACCOUNTS_TABLE"])


class LedgerBusy(Exception):
    """A transient failure the workflow's Retry absorbs."""


@tracer.traced.handler
def assess(event, context):
    if random.random() < 0.2:
        raise LedgerBusy("the fee schedule is being updated")
    fee = round(min(35.0, 5.0 + float(event["amount"]) * 0.05), 2)
    return {"fee": fee, "freeze": float(event["amount"]) > 400}


@tracer.traced.handler
def apply_fee(event, context):
    ACCOUNTS.update_item(
        ReturnConsumedCapacity="TOTAL",
        Key={"account_id": event["account"]},
        UpdateExpression="SET balance = balance - :fee",
        ExpressionAttributeValues={":fee": Decimal(str(event["assessment"]["fee"]))},
    )
    return {"charged": event["assessment"]["fee"]}


@tracer.traced.handler
def freeze(event, context):
    item = ACCOUNTS.get_item(ReturnConsumedCapacity="TOTAL", Key={"account_id": event["account"]}).get("Item") or {}
    if item.get("vip"):
        raise PermissionError(f"{event['account']} is a VIP account: freezing needs a manager")
    ACCOUNTS.update_item(
        ReturnConsumedCapacity="TOTAL",
        Key={"account_id": event["account"]},
        UpdateExpression="SET frozen = :yes",
        ExpressionAttributeValues={":yes": True},
    )
    return {"frozen": event["account"]}
