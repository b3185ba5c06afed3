"""A handler instrumented with the AWS X-Ray SDK, as existing Lambda functions are."""

from aws_xray_sdk.core import xray_recorder


@xray_recorder.capture("debit")
def debit(amount):
    xray_recorder.current_subsegment().put_annotation("amount", amount)
    return amount


def handler(event, context):
    return {"debited": debit(event["amount"])}
