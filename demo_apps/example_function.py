"""A Lambda-style function module, written as one is for AWS: tracing set up at the top.

Imported by demo_apps.tracer_example after it has pointed OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
at its receiver, so this module's init work (timed imports, ``load_rates``) lands under the
first invocation's Initialization span, as it would in a Lambda execution environment.
"""

from __future__ import annotations

import tracer

tracer.track_imports()
tracer.configure("bank-withdraw")

import decimal  # noqa: E402 - imported after track_imports() so the import is timed
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402


@dataclass(frozen=True)
class LambdaContext:
    """The parts of AWS's Lambda context object the tracer reads."""

    function_name: str = "withdraw"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:withdraw"
    aws_request_id: str = ""


class ThrottledError(Exception):
    """Stands in for DynamoDB's ProvisionedThroughputExceededException."""


ThrottledError.__name__ = "ProvisionedThroughputExceededException"


@tracer.traced
def load_rates() -> dict[str, decimal.Decimal]:
    """Init-time work: recorded under the cold start's Initialization span."""
    time.sleep(0.02)
    return {"fee": decimal.Decimal("1.50")}


RATES = load_rates()


@tracer.traced(name="debit account")
def debit(account: str, amount: decimal.Decimal) -> decimal.Decimal:
    tracer.annotate("account", account)
    if amount > 500:
        raise ThrottledError("account table is throttling")
    time.sleep(0.003)
    return decimal.Decimal(1000) - amount - RATES["fee"]


@tracer.traced.handler
def withdraw(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    body = json.loads(event.get("body") or "{}")
    if "amount" not in body:
        return {"statusCode": 400, "body": json.dumps({"message": "amount is required"})}
    tracer.put_metadata("request", {"account": body["account"], "token": "secret-value"})
    try:
        balance = debit(body["account"], decimal.Decimal(str(body["amount"])))
    except ThrottledError:
        return {"statusCode": 429, "body": json.dumps({"message": "Too Many Requests"})}
    if body["amount"] == 13:
        raise RuntimeError("unlucky amount")
    return {"statusCode": 200, "body": json.dumps({"balance": str(balance)})}


@tracer.traced.handler
def audit(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    amounts = [json.loads(r["body"])["amount"] for r in event["Records"]]
    return {"batchItemFailures": [], "mean": statistics.fmean(amounts)}
