"""The ATM withdrawal: a conditional debit in DynamoDB, a ledger entry in the private ledger
(reached through the VPC), and an Overdraft event on the bank's bus when the balance is short."""

import json
import os
import random
from decimal import Decimal

import boto3
import httpx
from aws_lambda_powertools import Logger

import tracer

tracer.configure()
tracer.instrument_aws()
tracer.instrument_http()

# JSON log lines with the X-Ray trace id: the local cloud sends them to Fluoro beside the trace.
LOGGER = Logger(service="withdraw")
ACCOUNTS = boto3.resource("dynamodb").Table(os.environ["ACCOUNTS_TABLE"])
EVENTS = boto3.client("events")
LEDGER = httpx.Client(base_url=f"http://{os.environ['LEDGER_ADDRESS']}", timeout=2.0)


def _answer(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _request(event):
    try:
        body = json.loads(event.get("body") or "{}")
        account, amount = str(body["account"]), Decimal(str(body["amount"]))
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None
    return (account, amount) if amount > 0 else None


@tracer.traced.handler
def handler(event, context):
    request = _request(event)
    if request is None:
        return _answer(400, {"message": "a JSON body with an account and a positive amount is required"})
    account, amount = request
    tracer.annotate("account", account)
    LOGGER.info("withdrawing", extra={"account": account, "amount": str(amount)})
    if random.random() < float(os.environ.get("FAULT_RATE", "0")):
        LOGGER.error("the core banking link dropped the debit", extra={"account": account})
        raise ConnectionError("the core banking link dropped the debit")  # a downstream fault: 502
    try:
        updated = ACCOUNTS.update_item(
            ReturnConsumedCapacity="TOTAL",
            Key={"account_id": account},
            UpdateExpression="SET balance = balance - :amount",
            ConditionExpression="attribute_exists(account_id) AND balance >= :amount",
            ExpressionAttributeValues={":amount": amount},
            ReturnValues="UPDATED_NEW",
        )
    except ACCOUNTS.meta.client.exceptions.ConditionalCheckFailedException:
        return _refused(account, amount)
    entry = LEDGER.post("/entries", json={"account": account, "amount": str(-amount)})
    entry.raise_for_status()
    balance = float(updated["Attributes"]["balance"])
    return _answer(
        200, {"account": account, "dispensed": float(amount), "balance": balance, "entry": entry.json()["id"]}
    )


def _refused(account, amount):
    if "Item" not in ACCOUNTS.get_item(ReturnConsumedCapacity="TOTAL", Key={"account_id": account}):
        return _answer(404, {"message": f"no account {account}"})
    detail = {"account": account, "amount": float(amount)}
    LOGGER.warning("insufficient funds: overdraft event sent", extra=detail)
    EVENTS.put_events(
        Entries=[
            {
                "EventBusName": os.environ["BUS_NAME"],
                "Source": "bank.atm",
                "DetailType": "Overdraft",
                "Detail": json.dumps(detail),
            }
        ]
    )
    return _answer(402, {"message": "insufficient funds", **detail})
