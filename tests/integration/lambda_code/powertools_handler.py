"""A handler traced with Powertools for AWS Lambda's Tracer (the X-Ray SDK underneath)."""

from typing import Any

from aws_lambda_powertools import Tracer

tracer = Tracer(service="payments")


@tracer.capture_method
def charge(amount: int) -> int:
    tracer.put_annotation(key="amount", value=amount)  # type: ignore[arg-type]  # typed as numbers.Number
    return amount


@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"charged": charge(event["amount"])}
