"""A handler traced with Powertools for AWS Lambda's Tracer (the X-Ray SDK underneath)."""

from aws_lambda_powertools import Tracer

tracer = Tracer(service="payments")


@tracer.capture_method
def charge(amount):
    tracer.put_annotation(key="amount", value=amount)
    return amount


@tracer.capture_lambda_handler
def handler(event, context):
    return {"charged": charge(event["amount"])}
