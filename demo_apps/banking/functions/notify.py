"""Telling the customer about an overdraft — instrumented with Powertools' Tracer (the X-Ray SDK),
unchanged, to show X-Ray-instrumented code landing on the same map as OpenTelemetry code."""

import os

import boto3
from aws_lambda_powertools import Tracer

tracer = Tracer(service="notify-customer")
NOTICES = boto3.resource("dynamodb").Table(os.environ["NOTICES_TABLE"])


@tracer.capture_method
def send_notice(account, amount):
    tracer.put_annotation(key="account", value=account)
    NOTICES.put_item(
        ReturnConsumedCapacity="TOTAL",
        Item={"account_id": account, "message": f"Your withdrawal of {amount} was refused."},
    )


@tracer.capture_lambda_handler
def handler(event, context):
    detail = event["detail"]
    send_notice(detail["account"], detail["amount"])
    return {"notified": detail["account"]}
